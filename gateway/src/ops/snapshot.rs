//! A canvas's pixels and the `seq` they include, read atomically, in the
//! form Redis holds them (`packed`), one byte per cell (`cells`), or as a
//! PNG for people.

use super::OpError;
use crate::canvases::CanvasDef;
use crate::state::AppState;
use shared::{CanvasId, ErrorCode};
use store::PixelChange;

/// The formats a snapshot comes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Packed,
    Cells,
    Png,
}

impl Format {
    /// `packed` (the default), `cells` or `png`; E007 otherwise.
    pub fn parse(name: Option<&str>) -> Result<Format, OpError> {
        match name.unwrap_or("packed") {
            "packed" => Ok(Format::Packed),
            "cells" => Ok(Format::Cells),
            "png" => Ok(Format::Png),
            _ => Err(OpError::new(
                ErrorCode::InvalidValue,
                "format must be packed, cells or png",
            )),
        }
    }

    /// The body's content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Png => "image/png",
            Format::Packed | Format::Cells => "application/octet-stream",
        }
    }
}

/// A snapshot in a format, with what a reader needs to interpret it.
pub(crate) struct Taken {
    pub body: Vec<u8>,
    pub seq: u64,
    pub epoch: String,
    /// Bits per cell of the packed form.
    pub bits: u8,
}

/// Reads the canvas's snapshot (initialising, or rebuilding, a canvas
/// Redis does not have, like a join).
pub(crate) async fn take(
    state: &AppState,
    canvas: &CanvasId,
    def: &CanvasDef,
    format: Format,
) -> Result<Taken, OpError> {
    let geometry = def.geometry();
    let bits = PixelChange::bits_for(geometry.palette_size);
    let cells = geometry.width as usize * geometry.height as usize;
    let unavailable = |e: store::StoreError| OpError::unavailable("canvas state", &e);
    let position = state.log.position(canvas).await.map_err(unavailable)?;
    let snap = state
        .log
        .snapshot(canvas, bits, cells)
        .await
        .map_err(unavailable)?;
    let body = match format {
        Format::Cells => snap.cells,
        Format::Png => render_png(geometry.width, geometry.height, &def.palette, &snap.cells)
            .map_err(|err| {
                tracing::error!(error = %err, "png encoding failed");
                OpError::new(ErrorCode::Unavailable, "png encoding failed")
            })?,
        Format::Packed => {
            let mut packed = Vec::new();
            for (i, c) in snap.cells.iter().enumerate() {
                if *c != 0 {
                    store::pack_cell(&mut packed, bits, i, *c);
                }
            }
            packed.resize((cells * usize::from(bits)).div_ceil(8), 0);
            packed
        }
    };
    Ok(Taken {
        body,
        seq: snap.seq,
        epoch: snap.epoch.unwrap_or(position.epoch),
        bits,
    })
}

fn render_png(
    width: u32,
    height: u32,
    palette: &[[u8; 3]],
    cells: &[u8],
) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header()?;
        let rgb: Vec<u8> = cells
            .iter()
            .flat_map(|c| palette.get(usize::from(*c)).copied().unwrap_or([0, 0, 0]))
            .collect();
        writer.write_image_data(&rgb)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_encodes_with_any_index() {
        let palette = crate::canvases::default_palette(32);
        let png = render_png(3, 2, &palette, &[0, 1, 2, 29, 30, 255]).expect("encodes");
        assert_eq!(&png[1..4], b"PNG");
    }
}
