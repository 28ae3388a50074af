//! Tests of `validate`.

#[test]
fn highlights_point_at_a_position_or_a_user_for_a_bounded_time() {
    let g = CanvasGeometry {
        width: 100,
        height: 50,
        palette_size: 32,
    };
    let h = |x: Option<f64>, y: Option<f64>, user: Option<&str>, ms: u32| HighlightSend {
        id: None,
        canvas: crate::CanvasId::new("c").expect("id"),
        x,
        y,
        user: user.map(str::to_owned),
        duration_ms: ms,
    };
    assert_eq!(
        highlight(&h(Some(1.5), Some(50.0), None, 100), &g),
        Ok(HighlightTarget::Position(1.5, 50.0))
    );
    assert_eq!(
        highlight(&h(None, None, Some("ada"), 60_000), &g),
        Ok(HighlightTarget::User("ada".into()))
    );
    for bad in [
        h(Some(1.0), Some(1.0), None, 99),
        h(Some(1.0), Some(1.0), None, 60_001),
        h(Some(101.0), Some(1.0), None, 1000),
        h(Some(f64::NAN), Some(1.0), None, 1000),
        h(Some(1.0), None, None, 1000),
        h(None, None, None, 1000),
        h(Some(1.0), Some(1.0), Some("ada"), 1000),
        h(None, None, Some(""), 1000),
        h(None, None, Some("a\u{7}b"), 1000),
    ] {
        let err = highlight(&bad, &g).expect_err("invalid");
        assert_eq!(err.code, ErrorCode::InvalidValue, "{bad:?}");
    }
}

use super::*;
use crate::ids::CanvasId;
use crate::protocol::PixelInput;

const GEO: CanvasGeometry = CanvasGeometry {
    width: 100,
    height: 50,
    palette_size: 32,
};
const LIMITS: CommandLimits = CommandLimits {
    max_pixels_per_draw: 4,
};

fn draw_of(pixels: &[(i64, i64, i64)]) -> Draw {
    Draw {
        id: None,
        canvas: CanvasId::new("c").expect("valid"),
        key: None,
        pixels: pixels
            .iter()
            .map(|&(x, y, color)| PixelInput { x, y, color })
            .collect(),
    }
}

#[test]
fn draw_accepts_pixels_inside_canvas_and_palette() {
    let px = draw(&draw_of(&[(0, 0, 0), (99, 49, 31)]), &GEO, &LIMITS).expect("valid");
    assert_eq!(
        px,
        vec![
            Pixel {
                x: 0,
                y: 0,
                color: 0
            },
            Pixel {
                x: 99,
                y: 49,
                color: 31
            }
        ]
    );
}

#[test]
fn draw_rejects_each_bad_value_with_e007() {
    type Case<'a> = (&'a [(i64, i64, i64)], &'a str);
    let cases: &[Case] = &[
        (&[], "at least one"),
        (&[(0, 0, 0); 5], "at most 4"),
        (&[(100, 0, 0)], "outside"),
        (&[(0, 50, 0)], "outside"),
        (&[(-1, 0, 0)], "outside"),
        (&[(0, -1, 0)], "outside"),
        (&[(i64::MAX, 0, 0)], "outside"),
        (&[(0, 0, 32)], "palette"),
        (&[(0, 0, -1)], "palette"),
        (&[(0, 0, 256)], "palette"),
        (&[(0, 0, 0), (1, 1, 99)], "pixels[1]"),
    ];
    for (pixels, needle) in cases {
        let err = draw(&draw_of(pixels), &GEO, &LIMITS).expect_err(needle);
        assert_eq!(err.code, ErrorCode::InvalidValue);
        assert!(err.message.contains(needle), "{needle}: {err}");
    }
}

fn cursor_at(x: f64, y: f64) -> CursorMove {
    CursorMove {
        id: None,
        canvas: CanvasId::new("c").expect("valid"),
        x,
        y,
    }
}

#[test]
fn cursor_must_be_finite_and_on_the_canvas() {
    assert_eq!(cursor(&cursor_at(0.0, 0.0), &GEO), Ok((0.0, 0.0)));
    assert_eq!(cursor(&cursor_at(100.0, 50.0), &GEO), Ok((100.0, 50.0)));
    for (x, y) in [
        (-0.1, 0.0),
        (0.0, 50.5),
        (f64::NAN, 1.0),
        (1.0, f64::INFINITY),
    ] {
        let err = cursor(&cursor_at(x, y), &GEO).expect_err("outside");
        assert_eq!(err.code, ErrorCode::InvalidValue);
    }
}

fn chat_of(text: &str) -> ChatSend {
    ChatSend {
        id: None,
        canvas: CanvasId::new("c").expect("valid"),
        key: None,
        text: text.into(),
    }
}

#[test]
fn chat_length_counts_characters_not_bytes() {
    assert!(chat(&chat_of(&"é".repeat(2000))).is_ok());
    let err = chat(&chat_of(&"a".repeat(2001))).expect_err("too long");
    assert!(err.message.contains("2001"));
    assert!(chat(&chat_of("line one\nline two\ttab")).is_ok());
    assert!(chat(&chat_of("   \n")).is_err());
    assert!(chat(&chat_of("")).is_err());
    assert!(chat(&chat_of("bell\u{7}")).is_err());
    assert!(chat(&chat_of("nul\0")).is_err());
}

#[test]
fn geometry_check() {
    assert!(GEO.check().is_ok());
    for bad in [
        CanvasGeometry { width: 0, ..GEO },
        CanvasGeometry {
            height: 5000,
            ..GEO
        },
        CanvasGeometry {
            palette_size: 1,
            ..GEO
        },
        CanvasGeometry {
            palette_size: 257,
            ..GEO
        },
    ] {
        assert!(bad.check().is_err(), "{bad:?}");
    }
}

#[test]
fn objects_are_bounded_and_named() {
    let g = CanvasGeometry {
        width: 100,
        height: 50,
        palette_size: 32,
    };
    let canvas = crate::ids::CanvasId::new("c").expect("valid");
    let create = |kind: &str, x: f64, w: f64, props: Props| ObjectCreate {
        id: None,
        canvas: canvas.clone(),
        key: None,
        kind: kind.into(),
        x,
        y: 10.0,
        w,
        h: 5.0,
        props,
    };
    let p = |pairs: &[(&str, serde_json::Value)]| -> Props {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    };
    assert!(object_create(&create("token", 100.0, 100.0, p(&[("hp", 3.into())])), &g).is_ok());
    for bad in [
        create("", 1.0, 1.0, Props::new()),
        create("Tö", 1.0, 1.0, Props::new()),
        create(&"k".repeat(33), 1.0, 1.0, Props::new()),
        create("token", 100.5, 1.0, Props::new()),
        create("token", f64::NAN, 1.0, Props::new()),
        create("token", 1.0, 0.0, Props::new()),
        create("token", 1.0, 101.0, Props::new()),
        create("token", 1.0, 1.0, p(&[("a b", 1.into())])),
        create("token", 1.0, 1.0, p(&[("gone", serde_json::Value::Null)])),
        create("token", 1.0, 1.0, p(&[("big", "x".repeat(5000).into())])),
    ] {
        let err = object_create(&bad, &g).expect_err("refused");
        assert_eq!(err.code, ErrorCode::InvalidValue, "{bad:?}");
    }
    let many: Props = (0..33).map(|i| (format!("p{i}"), 1.into())).collect();
    assert!(object_create(&create("t", 1.0, 1.0, many), &g).is_err());
    let update = |object: &str, props: Props| ObjectUpdate {
        id: None,
        canvas: canvas.clone(),
        key: None,
        object: object.into(),
        props,
    };
    assert!(object_update(&update("a1", p(&[("hp", serde_json::Value::Null)]))).is_ok());
    assert!(object_update(&update("a1", Props::new())).is_err());
    assert!(object_update(&update("a/1", p(&[("hp", 1.into())]))).is_err());
    let mv = |x: f64, w: Option<f64>| ObjectMove {
        id: None,
        canvas: canvas.clone(),
        key: None,
        object: "a1".into(),
        x,
        y: 0.0,
        w,
        h: None,
    };
    assert!(object_move(&mv(0.0, None), &g).is_ok());
    assert!(object_move(&mv(-1.0, None), &g).is_err());
    assert!(object_move(&mv(1.0, Some(-2.0)), &g).is_err());
}

#[test]
fn activity_locates_editing_only() {
    let g = CanvasGeometry {
        width: 10,
        height: 10,
        palette_size: 32,
    };
    let a = |state, x: Option<f64>, y: Option<f64>, object: Option<&str>| ActivitySend {
        id: None,
        canvas: crate::ids::CanvasId::new("c").expect("valid"),
        state,
        x,
        y,
        object: object.map(str::to_owned),
    };
    use ActivityState::*;
    for ok in [
        a(Typing, None, None, None),
        a(Idle, None, None, None),
        a(Editing, Some(1.0), Some(2.0), None),
        a(Editing, None, None, Some("o1")),
        a(Editing, Some(0.0), Some(10.0), Some("o1")),
    ] {
        assert!(activity(&ok, &g).is_ok(), "{ok:?}");
    }
    for bad in [
        a(Typing, Some(1.0), Some(1.0), None),
        a(Active, None, None, Some("o1")),
        a(Editing, None, None, None),
        a(Editing, Some(1.0), None, None),
        a(Editing, Some(11.0), Some(1.0), None),
        a(Editing, None, None, Some("bad id")),
    ] {
        assert!(activity(&bad, &g).is_err(), "{bad:?}");
    }
}
