//! Validation of decoded client commands against a canvas's geometry and
//! the server's limits. Every rejection is an [`Invalid`] carrying `E007`
//! and a message that names the offending field.

use crate::error::ErrorCode;
use crate::protocol::{
    Activity, ActivitySend, ActivityState, ChatSend, CursorMove, Draw, HighlightSend, ObjectCreate,
    ObjectMove, ObjectUpdate, Pixel, Props,
};

/// Longest chat message, in Unicode scalar values (characters).
pub const MAX_CHAT_CHARS: usize = 2000;

/// Shortest and longest highlight, milliseconds.
pub const HIGHLIGHT_MS: std::ops::RangeInclusive<u32> = 100..=60_000;

/// What a highlight points at.
#[derive(Debug, Clone, PartialEq)]
pub enum HighlightTarget {
    Position(f32, f32),
    User(String),
}

/// The size and palette of a canvas: what coordinates and colours are legal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CanvasGeometry {
    pub width: u32,
    pub height: u32,
    /// Number of palette entries; colours are indexes `0..palette_size`.
    pub palette_size: u16,
}

/// Largest canvas side accepted anywhere.
pub const MAX_CANVAS_SIDE: u32 = 4096;
/// Largest palette accepted (colour indexes must fit in a byte).
pub const MAX_PALETTE_SIZE: u16 = 256;

impl CanvasGeometry {
    /// Checks that the geometry itself is usable.
    pub fn check(&self) -> Result<(), String> {
        if !(1..=MAX_CANVAS_SIDE).contains(&self.width)
            || !(1..=MAX_CANVAS_SIDE).contains(&self.height)
        {
            return Err(format!(
                "canvas sides must be 1..={MAX_CANVAS_SIDE}, got {}x{}",
                self.width, self.height
            ));
        }
        if !(2..=MAX_PALETTE_SIZE).contains(&self.palette_size) {
            return Err(format!(
                "palette size must be 2..={MAX_PALETTE_SIZE}, got {}",
                self.palette_size
            ));
        }
        Ok(())
    }
}

/// Server-side limits that validation enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandLimits {
    /// Most pixels in one `draw`.
    pub max_pixels_per_draw: usize,
}

/// A command that decoded but whose values are not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    /// Always [`ErrorCode::InvalidValue`] today; kept so callers never guess.
    pub code: ErrorCode,
    pub message: String,
}

fn invalid(message: String) -> Invalid {
    Invalid {
        code: ErrorCode::InvalidValue,
        message,
    }
}

/// Validates a `draw` and returns its pixels in their compact form.
pub fn draw(
    cmd: &Draw,
    geometry: &CanvasGeometry,
    limits: &CommandLimits,
) -> Result<Vec<Pixel>, Invalid> {
    if cmd.pixels.is_empty() {
        return Err(invalid("pixels must hold at least one pixel".into()));
    }
    if cmd.pixels.len() > limits.max_pixels_per_draw {
        return Err(invalid(format!(
            "pixels holds {} pixels; at most {} per draw",
            cmd.pixels.len(),
            limits.max_pixels_per_draw
        )));
    }
    cmd.pixels
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let x = u32::try_from(p.x).ok().filter(|x| *x < geometry.width);
            let y = u32::try_from(p.y).ok().filter(|y| *y < geometry.height);
            let (Some(x), Some(y)) = (x, y) else {
                return Err(invalid(format!(
                    "pixels[{i}] at ({}, {}) is outside the {}x{} canvas",
                    p.x, p.y, geometry.width, geometry.height
                )));
            };
            let color = u8::try_from(p.color)
                .ok()
                .filter(|c| u16::from(*c) < geometry.palette_size);
            let Some(color) = color else {
                return Err(invalid(format!(
                    "pixels[{i}].color {} is not a palette index 0..{}",
                    p.color, geometry.palette_size
                )));
            };
            Ok(Pixel { x, y, color })
        })
        .collect()
}

/// Validates a `cursor` move: finite and on the canvas (edges included).
pub fn cursor(cmd: &CursorMove, geometry: &CanvasGeometry) -> Result<(f32, f32), Invalid> {
    let inside = |v: f64, max: u32| v.is_finite() && v >= 0.0 && v <= f64::from(max);
    if !inside(cmd.x, geometry.width) || !inside(cmd.y, geometry.height) {
        return Err(invalid(format!(
            "cursor ({}, {}) is outside the {}x{} canvas",
            cmd.x, cmd.y, geometry.width, geometry.height
        )));
    }
    Ok((cmd.x as f32, cmd.y as f32))
}

/// Validates a chat message: 1 to 2,000 characters, not only whitespace, no
/// control characters other than tab and line breaks.
pub fn chat(cmd: &ChatSend) -> Result<(), Invalid> {
    let chars = cmd.text.chars().count();
    if chars > MAX_CHAT_CHARS {
        return Err(invalid(format!(
            "text has {chars} characters; at most {MAX_CHAT_CHARS}"
        )));
    }
    if cmd.text.trim().is_empty() {
        return Err(invalid("text must not be empty".into()));
    }
    if let Some(c) = cmd
        .text
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(invalid(format!(
            "text contains control character U+{:04X}",
            c as u32
        )));
    }
    Ok(())
}

/// Validates a highlight: exactly one target (a position inside the canvas,
/// or a user id of 1 to 128 bytes without control characters) and a
/// duration within [`HIGHLIGHT_MS`].
pub fn highlight(
    cmd: &HighlightSend,
    geometry: &CanvasGeometry,
) -> Result<HighlightTarget, Invalid> {
    if !HIGHLIGHT_MS.contains(&cmd.duration_ms) {
        return Err(invalid(format!(
            "duration_ms {} is outside {}..={}",
            cmd.duration_ms,
            HIGHLIGHT_MS.start(),
            HIGHLIGHT_MS.end()
        )));
    }
    match (cmd.x, cmd.y, &cmd.user) {
        (Some(x), Some(y), None) => {
            let inside = |v: f64, max: u32| v.is_finite() && v >= 0.0 && v <= f64::from(max);
            if !inside(x, geometry.width) || !inside(y, geometry.height) {
                return Err(invalid(format!(
                    "highlight ({x}, {y}) is outside the {}x{} canvas",
                    geometry.width, geometry.height
                )));
            }
            Ok(HighlightTarget::Position(x as f32, y as f32))
        }
        (None, None, Some(user)) => {
            if user.is_empty() || user.len() > 128 || user.chars().any(char::is_control) {
                return Err(invalid(
                    "user must be 1 to 128 bytes without control characters".into(),
                ));
            }
            Ok(HighlightTarget::User(user.clone()))
        }
        _ => Err(invalid(
            "a highlight points at a position (x and y) or at a user, exactly one".into(),
        )),
    }
}

/// Most properties on one object, and in one update.
pub const MAX_OBJECT_PROPS: usize = 32;

/// Longest property name, in bytes.
pub const MAX_PROP_NAME: usize = 64;

/// Most bytes of JSON in one object's or one update's property values.
pub const MAX_PROPS_BYTES: usize = 4096;

/// Longest object kind and object id, in bytes.
pub const MAX_KIND: usize = 32;
pub const MAX_OBJECT_ID: usize = 64;

fn word(s: &str, max: usize, extra: &[char]) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(&c))
}

/// An object id: 1 to 64 of `A-Z a-z 0-9 _ -`.
pub fn object_id(id: &str) -> Result<(), Invalid> {
    if word(id, MAX_OBJECT_ID, &['_', '-']) {
        Ok(())
    } else {
        Err(invalid(format!(
            "object {id:?} is not an object id (1 to {MAX_OBJECT_ID} of A-Z a-z 0-9 _ -)"
        )))
    }
}

/// Longest operation key, in bytes.
pub const MAX_OP_KEY: usize = 64;

/// An operation key: 1 to 64 printable ASCII characters (`!` to `~`).
pub fn op_key(key: &str) -> Result<(), Invalid> {
    if !key.is_empty() && key.len() <= MAX_OP_KEY && key.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(invalid(format!(
            "key {key:?} is not an operation key (1 to {MAX_OP_KEY} printable ASCII characters, no spaces)"
        )))
    }
}

/// Properties: at most 32, names 1 to 64 of `A-Z a-z 0-9 _ . -`, values
/// at most 4,096 bytes of JSON together; `null` (removal) only if `update`.
fn props(props: &Props, update: bool) -> Result<(), Invalid> {
    if props.len() > MAX_OBJECT_PROPS {
        return Err(invalid(format!(
            "{} properties; at most {MAX_OBJECT_PROPS}",
            props.len()
        )));
    }
    let mut bytes = 0;
    for (name, value) in props {
        if !word(name, MAX_PROP_NAME, &['_', '.', '-']) {
            return Err(invalid(format!(
                "property name {name:?} must be 1 to {MAX_PROP_NAME} of A-Z a-z 0-9 _ . -"
            )));
        }
        if value.is_null() && !update {
            return Err(invalid(format!("property {name:?} is null")));
        }
        bytes += value.to_string().len();
    }
    if bytes > MAX_PROPS_BYTES {
        return Err(invalid(format!(
            "property values are {bytes} bytes of JSON; at most {MAX_PROPS_BYTES}"
        )));
    }
    Ok(())
}

/// A position on the canvas (edges included) and, if given, a size that
/// fits the canvas's dimensions.
fn placement(
    x: f64,
    y: f64,
    w: Option<f64>,
    h: Option<f64>,
    geometry: &CanvasGeometry,
) -> Result<(), Invalid> {
    let inside = |v: f64, max: u32| v.is_finite() && v >= 0.0 && v <= f64::from(max);
    if !inside(x, geometry.width) || !inside(y, geometry.height) {
        return Err(invalid(format!(
            "position ({x}, {y}) is outside the {}x{} canvas",
            geometry.width, geometry.height
        )));
    }
    let size = |v: Option<f64>, max: u32| v.is_none_or(|v| inside(v, max) && v > 0.0);
    if !size(w, geometry.width) || !size(h, geometry.height) {
        return Err(invalid(format!(
            "size {w:?} x {h:?} must be above 0 and at most the {}x{} canvas",
            geometry.width, geometry.height
        )));
    }
    Ok(())
}

/// Validates `object_create`.
pub fn object_create(cmd: &ObjectCreate, geometry: &CanvasGeometry) -> Result<(), Invalid> {
    if !word(&cmd.kind, MAX_KIND, &['_', '-']) {
        return Err(invalid(format!(
            "kind {:?} must be 1 to {MAX_KIND} of A-Z a-z 0-9 _ -",
            cmd.kind
        )));
    }
    placement(cmd.x, cmd.y, Some(cmd.w), Some(cmd.h), geometry)?;
    props(&cmd.props, false)
}

/// Validates `object_update`: at least one property.
pub fn object_update(cmd: &ObjectUpdate) -> Result<(), Invalid> {
    object_id(&cmd.object)?;
    if cmd.props.is_empty() {
        return Err(invalid("props is empty: nothing to update".into()));
    }
    props(&cmd.props, true)
}

/// Validates `object_move`.
pub fn object_move(cmd: &ObjectMove, geometry: &CanvasGeometry) -> Result<(), Invalid> {
    object_id(&cmd.object)?;
    placement(cmd.x, cmd.y, cmd.w, cmd.h, geometry)
}

/// Validates `activity`: `editing` needs a position on the canvas (`x`
/// and `y` together), an object id, or both; other states take neither.
pub fn activity(cmd: &ActivitySend, geometry: &CanvasGeometry) -> Result<Activity, Invalid> {
    let located = cmd.x.is_some() || cmd.y.is_some() || cmd.object.is_some();
    if cmd.state != ActivityState::Editing {
        if located {
            return Err(invalid("x, y and object are for editing only".into()));
        }
    } else {
        if !located {
            return Err(invalid("editing needs x and y, an object, or both".into()));
        }
        match (cmd.x, cmd.y) {
            (Some(x), Some(y)) => placement(x, y, None, None, geometry)?,
            (None, None) => {}
            _ => return Err(invalid("x and y go together".into())),
        }
        if let Some(object) = &cmd.object {
            object_id(object)?;
        }
    }
    Ok(Activity {
        state: cmd.state,
        x: cmd.x,
        y: cmd.y,
        object: cmd.object.clone(),
        ts: crate::now_ms(),
    })
}

#[cfg(test)]
mod tests;
