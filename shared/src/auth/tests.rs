//! Tests of `auth`.

#[test]
fn every_reason_is_listed() {
    let all = [
        AuthError::Malformed,
        AuthError::TooLong,
        AuthError::WrongAlgorithm { expected: "HS256" },
        AuthError::BadSignature,
        AuthError::Expired,
        AuthError::NotYetValid,
        AuthError::WrongAudience,
        AuthError::WrongIssuer,
        AuthError::MissingClaim("sub".into()),
        AuthError::InvalidClaims("x".into()),
    ];
    let reasons: Vec<&str> = all.iter().map(AuthError::reason).collect();
    assert_eq!(reasons, AuthError::REASONS);
}

use super::*;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

fn hs_settings() -> AuthSettings {
    AuthSettings {
        algorithm: JwtAlgorithm::Hs256,
        key: VerifyKey::Secret(SECRET.to_vec()),
        issuer: None,
        audience: None,
        leeway_secs: 5,
        max_lifetime_secs: None,
    }
}

fn now() -> u64 {
    crate::now_ms() / 1000
}

fn verifier(s: &AuthSettings) -> TokenVerifier {
    TokenVerifier::new(s).expect("valid settings")
}

#[test]
fn a_valid_token_yields_its_identity_and_roles() {
    let mut claims = MintClaims::for_user("u-1", 60);
    claims.name = Some("Ada".into());
    claims.role = Some(Role::Spectator);
    claims.roles.insert("map".into(), Role::Gm);
    let token = mint_hs256(SECRET, &claims).expect("mints");
    let id = verifier(&hs_settings()).verify(&token).expect("valid");
    assert_eq!(id.user_id, "u-1");
    assert_eq!(id.name.as_deref(), Some("Ada"));
    assert_eq!(id.role_on("map"), Some(Role::Gm));
    assert_eq!(id.role_on("other"), Some(Role::Spectator));
}

#[test]
fn time_claims_are_enforced_with_leeway() {
    let v = verifier(&hs_settings());
    let mut expired = MintClaims::for_user("u", 0);
    expired.exp = now() - 60;
    assert_eq!(
        v.verify(&mint_hs256(SECRET, &expired).expect("mints")),
        Err(AuthError::Expired)
    );
    let mut within_leeway = MintClaims::for_user("u", 0);
    within_leeway.exp = now() - 2;
    assert!(
        v.verify(&mint_hs256(SECRET, &within_leeway).expect("mints"))
            .is_ok()
    );
    let mut early = MintClaims::for_user("u", 600);
    early.nbf = Some(now() + 120);
    assert_eq!(
        v.verify(&mint_hs256(SECRET, &early).expect("mints")),
        Err(AuthError::NotYetValid)
    );
}

#[test]
fn exp_and_sub_are_required() {
    let v = verifier(&hs_settings());
    let no_exp = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &serde_json::json!({"sub": "u"}),
        &EncodingKey::from_secret(SECRET),
    )
    .expect("mints");
    assert_eq!(
        v.verify(&no_exp),
        Err(AuthError::MissingClaim("exp".into()))
    );
    let no_sub = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &serde_json::json!({"exp": now() + 60}),
        &EncodingKey::from_secret(SECRET),
    )
    .expect("mints");
    // jsonwebtoken reports a missing `sub` as a claims decoding failure.
    assert!(matches!(
        v.verify(&no_sub),
        Err(AuthError::MissingClaim(_) | AuthError::InvalidClaims(_))
    ));
    let empty_sub = mint_hs256(SECRET, &MintClaims::for_user("", 60)).expect("mints");
    assert!(matches!(
        v.verify(&empty_sub),
        Err(AuthError::InvalidClaims(_))
    ));
    let mut long_name = MintClaims::for_user("u", 60);
    long_name.name = Some("n".repeat(65));
    assert!(matches!(
        v.verify(&mint_hs256(SECRET, &long_name).expect("mints")),
        Err(AuthError::InvalidClaims(_))
    ));
}

#[test]
fn wrong_key_is_a_bad_signature() {
    let token = mint_hs256(
        b"another-secret-another-secret-xx",
        &MintClaims::for_user("u", 60),
    )
    .expect("mints");
    assert_eq!(
        verifier(&hs_settings()).verify(&token),
        Err(AuthError::BadSignature)
    );
}

fn b64(s: &str) -> String {
    // Minimal base64url without padding, enough for hand-made headers.
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let b = s.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[test]
fn alg_none_and_other_algorithms_are_rejected() {
    let v = verifier(&hs_settings());
    let claims = format!(r#"{{"sub":"u","exp":{}}}"#, now() + 60);
    let none = format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), b64(&claims));
    assert!(matches!(
        v.verify(&none),
        Err(AuthError::WrongAlgorithm { .. })
    ));
    let hs384 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS384),
        &MintClaims::for_user("u", 60),
        &EncodingKey::from_secret(SECRET),
    )
    .expect("mints");
    assert!(matches!(
        v.verify(&hs384),
        Err(AuthError::WrongAlgorithm { .. })
    ));
    for junk in ["", "abc", "a.b.c", "....", &"a".repeat(MAX_TOKEN_BYTES + 1)] {
        assert!(v.verify(junk).is_err(), "{junk}");
    }
}

#[test]
fn audience_and_issuer_are_checked_when_configured() {
    let mut s = hs_settings();
    s.audience = Some("easel".into());
    s.issuer = Some("https://auth.example".into());
    let v = verifier(&s);
    let mut good = MintClaims::for_user("u", 60);
    good.aud = Some("easel".into());
    good.iss = Some("https://auth.example".into());
    assert!(v.verify(&mint_hs256(SECRET, &good).expect("mints")).is_ok());
    let mut wrong_aud = good.clone();
    wrong_aud.aud = Some("other".into());
    assert_eq!(
        v.verify(&mint_hs256(SECRET, &wrong_aud).expect("mints")),
        Err(AuthError::WrongAudience)
    );
    let mut wrong_iss = good.clone();
    wrong_iss.iss = Some("https://evil.example".into());
    assert_eq!(
        v.verify(&mint_hs256(SECRET, &wrong_iss).expect("mints")),
        Err(AuthError::WrongIssuer)
    );
    let mut no_aud = good.clone();
    no_aud.aud = None;
    assert_eq!(
        v.verify(&mint_hs256(SECRET, &no_aud).expect("mints")),
        Err(AuthError::MissingClaim("aud".into()))
    );
    let mut no_iss = good.clone();
    no_iss.iss = None;
    assert_eq!(
        v.verify(&mint_hs256(SECRET, &no_iss).expect("mints")),
        Err(AuthError::MissingClaim("iss".into()))
    );
}

#[test]
fn settings_that_cannot_work_are_refused() {
    let mut s = hs_settings();
    s.key = VerifyKey::Secret(b"short".to_vec());
    assert!(matches!(
        TokenVerifier::new(&s),
        Err(AuthConfigError::SecretTooShort(5))
    ));
    s.algorithm = JwtAlgorithm::Rs256;
    assert!(matches!(
        TokenVerifier::new(&s),
        Err(AuthConfigError::PublicKeyRequired("RS256"))
    ));
    s.key = VerifyKey::PublicKeyPem(b"not a pem".to_vec());
    assert!(matches!(
        TokenVerifier::new(&s),
        Err(AuthConfigError::BadKey { .. })
    ));
    assert_eq!("hs256".parse::<JwtAlgorithm>(), Ok(JwtAlgorithm::Hs256));
    assert!("none".parse::<JwtAlgorithm>().is_err());
}

fn asym_case(
    alg: JwtAlgorithm,
    jwt_alg: Algorithm,
    private: &str,
    public: &str,
    other_private: &str,
) {
    let s = AuthSettings {
        algorithm: alg,
        key: VerifyKey::PublicKeyPem(public.as_bytes().to_vec()),
        issuer: None,
        audience: None,
        leeway_secs: 5,
        max_lifetime_secs: None,
    };
    let v = verifier(&s);
    let claims = MintClaims::for_user("u", 60);
    let key = |pem: &str| match alg {
        JwtAlgorithm::Rs256 => EncodingKey::from_rsa_pem(pem.as_bytes()).expect("rsa key"),
        _ => EncodingKey::from_ec_pem(pem.as_bytes()).expect("ec key"),
    };
    let good = jsonwebtoken::encode(&Header::new(jwt_alg), &claims, &key(private)).expect("mints");
    assert_eq!(v.verify(&good).expect("valid").user_id, "u");
    let forged =
        jsonwebtoken::encode(&Header::new(jwt_alg), &claims, &key(other_private)).expect("mints");
    assert_eq!(v.verify(&forged), Err(AuthError::BadSignature));
    // The classic confusion attack: an HS256 token keyed with the public key.
    let confused = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(public.as_bytes()),
    )
    .expect("mints");
    assert!(matches!(
        v.verify(&confused),
        Err(AuthError::WrongAlgorithm { .. })
    ));
}

#[test]
fn rs256_with_public_key() {
    asym_case(
        JwtAlgorithm::Rs256,
        Algorithm::RS256,
        include_str!("../../tests/keys/rsa_private.pem"),
        include_str!("../../tests/keys/rsa_public.pem"),
        include_str!("../../tests/keys/rsa_other_private.pem"),
    );
}

#[test]
fn es256_with_public_key() {
    asym_case(
        JwtAlgorithm::Es256,
        Algorithm::ES256,
        include_str!("../../tests/keys/ec_private.pem"),
        include_str!("../../tests/keys/ec_public.pem"),
        include_str!("../../tests/keys/ec_other_private.pem"),
    );
}

/// A token with these exact claims and header, signed with [`SECRET`].
fn signed(header: jsonwebtoken::Header, claims: serde_json::Value) -> String {
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(SECRET)).expect("encodes")
}

#[test]
fn a_sub_with_control_characters_is_refused() {
    let v = verifier(&hs_settings());
    for sub in ["ada\u{1f}gw\u{1f}1", "ada\nbob", "\u{7f}x", "tab\there"] {
        let token = mint_hs256(SECRET, &MintClaims::for_user(sub, 60)).expect("mints");
        assert!(
            matches!(v.verify(&token), Err(AuthError::InvalidClaims(_))),
            "{sub:?}"
        );
    }
    let token = mint_hs256(SECRET, &MintClaims::for_user("Ada Lovelace-1", 60)).expect("mints");
    assert!(v.verify(&token).is_ok());
}

#[test]
fn a_critical_header_extension_is_refused() {
    let v = verifier(&hs_settings());
    let claims = serde_json::json!({"sub": "ada", "exp": now() + 60});
    let plain = signed(jsonwebtoken::Header::new(Algorithm::HS256), claims.clone());
    assert!(v.verify(&plain).is_ok());
    // jsonwebtoken's Header has no `crit`: sign a header that carries one.
    use base64::Engine;
    let b64 = |v: &serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let header = serde_json::json!({"alg": "HS256", "typ": "JWT", "crit": ["exp"]});
    let input = format!("{}.{}", b64(&header), b64(&claims));
    let signature = jsonwebtoken::crypto::sign(
        input.as_bytes(),
        &EncodingKey::from_secret(SECRET),
        Algorithm::HS256,
    )
    .expect("signs");
    let token = format!("{input}.{signature}");
    assert!(
        matches!(v.verify(&token), Err(AuthError::InvalidClaims(m)) if m.contains("crit")),
        "a token with crit must be refused"
    );
}

#[test]
fn a_maximum_lifetime_refuses_longer_tokens() {
    let mut s = hs_settings();
    s.max_lifetime_secs = Some(3600);
    let v = verifier(&s);
    let t = now();
    let ok = signed(
        jsonwebtoken::Header::new(Algorithm::HS256),
        serde_json::json!({"sub": "ada", "iat": t, "exp": t + 3600}),
    );
    assert!(v.verify(&ok).is_ok());
    let long = signed(
        jsonwebtoken::Header::new(Algorithm::HS256),
        serde_json::json!({"sub": "ada", "iat": t, "exp": t + 86_400}),
    );
    assert!(matches!(v.verify(&long), Err(AuthError::InvalidClaims(_))));
    // Without iat the lifetime counts from now.
    let no_iat = signed(
        jsonwebtoken::Header::new(Algorithm::HS256),
        serde_json::json!({"sub": "ada", "exp": t + 86_400}),
    );
    assert!(matches!(
        v.verify(&no_iat),
        Err(AuthError::InvalidClaims(_))
    ));
    // Without a maximum, any lifetime.
    assert!(verifier(&hs_settings()).verify(&long).is_ok());
}
