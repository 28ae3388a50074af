//! The canvas catalogue: each canvas's size and palette.
//!
//! With a database, canvases are rows of `canvases`, loaded on first use and
//! cached (a definition never changes once created). An unknown id is "not
//! found" unless auto-create is on, which creates it with the configured
//! defaults. Without a database there is no catalogue: every canvas id is a
//! canvas of the configured size and palette.

use parking_lot::RwLock;
use shared::CanvasId;
use shared::validate::CanvasGeometry;
use std::collections::HashMap;
use std::sync::Arc;

/// Most definitions kept in the cache; beyond it the cache starts afresh.
const CACHE_LIMIT: usize = 100_000;

/// One canvas's definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanvasDef {
    pub id: CanvasId,
    pub width: u32,
    pub height: u32,
    /// RGB colours; wire colours are indexes into this.
    pub palette: Vec<[u8; 3]>,
}

impl CanvasDef {
    /// Size and palette size, for validation.
    pub fn geometry(&self) -> CanvasGeometry {
        CanvasGeometry {
            width: self.width,
            height: self.height,
            palette_size: self.palette.len() as u16,
        }
    }

    /// The REST representation.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "width": self.width,
            "height": self.height,
            "palette": self.palette.iter().map(|c| format_rgb(*c)).collect::<Vec<_>>(),
        })
    }
}

/// `#rrggbb`.
pub fn format_rgb(c: [u8; 3]) -> String {
    format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2])
}

/// Parses `#rrggbb`.
pub fn parse_rgb(s: &str) -> Option<[u8; 3]> {
    let hex = s.strip_prefix('#')?;
    if hex.len() != 6 || !hex.is_ascii() {
        return None;
    }
    let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
    Some([byte(0)?, byte(2)?, byte(4)?])
}

/// The default palette: the 32 colours of a classic pixel board, then greys
/// up to `size` entries.
pub fn default_palette(size: u16) -> Vec<[u8; 3]> {
    const COLOURS: [u32; 32] = [
        0x6d001a, 0xbe0039, 0xff4500, 0xffa800, 0xffd635, 0xfff8b8, 0x00a368, 0x00cc78, 0x7eed56,
        0x00756f, 0x009eaa, 0x00ccc0, 0x2450a4, 0x3690ea, 0x51e9f4, 0x493ac1, 0x6a5cff, 0x94b3ff,
        0x811e9f, 0xb44ac0, 0xe4abff, 0xde107f, 0xff3881, 0xff99aa, 0x6d482f, 0x9c6926, 0xffb470,
        0x000000, 0x515252, 0x898d90, 0xd4d7d9, 0xffffff,
    ];
    (0..size)
        .map(|i| {
            let rgb = COLOURS
                .get(usize::from(i))
                .copied()
                .unwrap_or_else(|| u32::from(i as u8) * 0x010101);
            [(rgb >> 16) as u8, (rgb >> 8) as u8, rgb as u8]
        })
        .collect()
}

/// Why a catalogue operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("the canvas catalogue is unavailable")]
    Unavailable(String),
    #[error(
        "a canvas catalogue needs EASEL_DATABASE_URL; without it every canvas id has the configured size"
    )]
    NoCatalogue,
}

/// See the module documentation.
pub struct Catalogue {
    default: CanvasGeometry,
    store: Option<Stored>,
}

struct Stored {
    pool: deadpool_postgres::Pool,
    auto_create: bool,
    cache: RwLock<HashMap<CanvasId, Arc<CanvasDef>>>,
}

fn row_to_def(id: &CanvasId, width: i32, height: i32, palette: Vec<String>) -> CanvasDef {
    CanvasDef {
        id: id.clone(),
        width: u32::try_from(width).unwrap_or(1),
        height: u32::try_from(height).unwrap_or(1),
        palette: palette
            .iter()
            .map(|c| parse_rgb(c).unwrap_or([0, 0, 0]))
            .collect(),
    }
}

impl Stored {
    async fn conn(&self) -> Result<deadpool_postgres::Object, CatalogueError> {
        self.pool
            .get()
            .await
            .map_err(|e| CatalogueError::Unavailable(e.to_string()))
    }
}

impl Catalogue {
    /// No database: every id is a canvas of `default`.
    pub fn implicit(default: CanvasGeometry) -> Self {
        Catalogue {
            default,
            store: None,
        }
    }

    /// Canvases stored in Postgres.
    pub fn stored(
        default: CanvasGeometry,
        pool: deadpool_postgres::Pool,
        auto_create: bool,
    ) -> Self {
        Catalogue {
            default,
            store: Some(Stored {
                pool,
                auto_create,
                cache: RwLock::new(HashMap::new()),
            }),
        }
    }

    fn default_def(&self, id: &CanvasId) -> CanvasDef {
        CanvasDef {
            id: id.clone(),
            width: self.default.width,
            height: self.default.height,
            palette: default_palette(self.default.palette_size),
        }
    }

    /// The canvas's definition, or `None` if it does not exist.
    pub async fn get(&self, id: &CanvasId) -> Result<Option<Arc<CanvasDef>>, CatalogueError> {
        let Some(store) = &self.store else {
            return Ok(Some(Arc::new(self.default_def(id))));
        };
        if let Some(def) = store.cache.read().get(id) {
            return Ok(Some(def.clone()));
        }
        let mut found = self.load(store, id).await?;
        if found.is_none() && store.auto_create {
            self.create(self.default_def(id)).await?;
            found = self.load(store, id).await?;
        }
        if let Some(def) = &found {
            let mut cache = store.cache.write();
            if cache.len() >= CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(id.clone(), def.clone());
        }
        Ok(found)
    }

    async fn load(
        &self,
        store: &Stored,
        id: &CanvasId,
    ) -> Result<Option<Arc<CanvasDef>>, CatalogueError> {
        let conn = store.conn().await?;
        let row = conn
            .query_opt(
                "SELECT width, height, palette FROM canvases WHERE id = $1",
                &[&id.as_str()],
            )
            .await
            .map_err(|e| CatalogueError::Unavailable(e.to_string()))?;
        Ok(row.map(|r| Arc::new(row_to_def(id, r.get(0), r.get(1), r.get(2)))))
    }

    /// Creates a canvas; `Ok(false)` if one with that id exists.
    pub async fn create(&self, def: CanvasDef) -> Result<bool, CatalogueError> {
        let Some(store) = &self.store else {
            return Err(CatalogueError::NoCatalogue);
        };
        let conn = store.conn().await?;
        let palette: Vec<String> = def.palette.iter().map(|c| format_rgb(*c)).collect();
        let inserted = conn
            .execute(
                "INSERT INTO canvases (id, width, height, palette) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (id) DO NOTHING",
                &[
                    &def.id.as_str(),
                    &(def.width as i32),
                    &(def.height as i32),
                    &palette,
                ],
            )
            .await
            .map_err(|e| CatalogueError::Unavailable(e.to_string()))?;
        Ok(inserted == 1)
    }

    /// Canvases with ids after `after`, in id order, at most `limit`.
    pub async fn list(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<CanvasDef>, CatalogueError> {
        let Some(store) = &self.store else {
            return Err(CatalogueError::NoCatalogue);
        };
        let conn = store.conn().await?;
        let rows = conn
            .query(
                "SELECT id, width, height, palette FROM canvases WHERE id > $1 ORDER BY id LIMIT $2",
                &[&after.unwrap_or(""), &(limit as i64)],
            )
            .await
            .map_err(|e| CatalogueError::Unavailable(e.to_string()))?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let id: String = r.get(0);
                let id = CanvasId::new(&id).ok()?;
                Some(row_to_def(&id, r.get(1), r.get(2), r.get(3)))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_round_trip_and_bad_ones_are_refused() {
        assert_eq!(parse_rgb("#ff4500"), Some([255, 69, 0]));
        assert_eq!(format_rgb([255, 69, 0]), "#ff4500");
        for bad in ["ff4500", "#ff450", "#gg0000", "#ff45000", "#ééé"] {
            assert_eq!(parse_rgb(bad), None, "{bad}");
        }
        assert_eq!(default_palette(32).len(), 32);
        assert_eq!(default_palette(40)[33], [33, 33, 33]);
    }
}
