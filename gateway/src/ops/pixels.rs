//! `draw`: pixels on a canvas, durable.

use super::{Caller, OpError, Payer, access, publish};
use crate::limits::OpClass;
use crate::state::AppState;
use shared::auth::Role;
use shared::protocol::{Draw, DrawEvent, Pixel, Published, ServerMessage};
use shared::validate::{self, CanvasGeometry, CommandLimits};
use store::{Change, PixelChange};

/// Validates, pays for and publishes a draw; its sequence number (the
/// first one's for a resent key).
pub(crate) async fn draw(
    state: &AppState,
    caller: &Caller,
    payer: &mut dyn Payer,
    geometry: &CanvasGeometry,
    cmd: Draw,
) -> Result<Option<Published>, OpError> {
    access::require(caller.role, Role::Player, "draw", &cmd.canvas)?;
    let key = publish::op_key(state, caller, cmd.key.as_deref())?;
    let limits = CommandLimits {
        max_pixels_per_draw: state.settings.max_pixels_per_draw,
    };
    let pixels = validate::draw(&cmd, geometry, &limits).map_err(OpError::invalid)?;
    payer.pay(OpClass::Pixels, pixels.len())?;
    let change = Change::Pixels(pixel_change(geometry, &pixels));
    let event = ServerMessage::Draw(DrawEvent {
        canvas: cmd.canvas.clone(),
        seq: None,
        author: caller.author.clone(),
        ts: shared::now_ms(),
        pixels,
    });
    let written = publish::durable(
        state,
        caller,
        &cmd.canvas,
        &event,
        Some(&change),
        key.as_ref(),
    );
    Ok(publish::published(written.await?, None))
}

/// The change a validated draw makes to the canvas state.
fn pixel_change(geometry: &CanvasGeometry, pixels: &[Pixel]) -> PixelChange {
    PixelChange {
        bits: PixelChange::bits_for(geometry.palette_size),
        cell_count: geometry.width as usize * geometry.height as usize,
        cells: pixels
            .iter()
            .map(|p| (p.y * geometry.width + p.x, p.color))
            .collect(),
    }
}
