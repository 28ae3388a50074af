//! Helpers every binary's configuration uses: an error that names the
//! setting, and range checks that produce it.

/// A configuration value that cannot work, naming the setting
/// (`EASEL_X (--x)`).
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {setting}: {message}")]
pub struct ConfigError {
    pub setting: String,
    pub message: String,
}

/// A [`ConfigError`] for `setting`.
pub fn bad(setting: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        setting: setting.into(),
        message: message.into(),
    }
}

/// `value` if it lies in `min..=max`, else an error naming `setting`.
pub fn check_range<T: PartialOrd + std::fmt::Display + Copy>(
    setting: &str,
    value: T,
    min: T,
    max: T,
) -> Result<T, ConfigError> {
    if value < min || value > max {
        return Err(bad(setting, format!("{value} is outside {min}..={max}")));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_names_the_setting() {
        assert_eq!(check_range("EASEL_X (--x)", 5, 1, 10).ok(), Some(5));
        let err = check_range("EASEL_X (--x)", 0, 1, 10).expect_err("below");
        assert_eq!(
            err.to_string(),
            "invalid configuration: EASEL_X (--x): 0 is outside 1..=10"
        );
    }
}
