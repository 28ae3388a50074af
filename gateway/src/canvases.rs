//! The canvas catalogue: each canvas's size and palette.
//!
//! With a database, canvases are rows of `canvases`, loaded on first use and
//! cached for [`CACHE_TTL`]: size and palette never change once created,
//! but a title may, and a canvas may be deleted, which other gateways see
//! when their entry expires (the gateway that deletes it forgets it at
//! once). A deleted canvas keeps its row, so its id is never reused. An
//! unknown id is "not found" unless auto-create is on, which creates it
//! with the configured defaults. Without a database there is no catalogue:
//! every canvas id is a canvas of the configured size and palette.

use parking_lot::RwLock;
use shared::CanvasId;
use shared::validate::CanvasGeometry;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most definitions kept in the cache; beyond it the cache starts afresh.
const CACHE_LIMIT: usize = 100_000;

/// How long a gateway trusts a cached definition: the bound on how long
/// another gateway's delete or title change goes unnoticed here.
pub const CACHE_TTL: Duration = Duration::from_secs(5);

/// Longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;

/// A title as given: trimmed, 1 to [`MAX_TITLE_CHARS`] characters, no
/// control characters.
pub fn check_title(title: &str) -> Result<String, String> {
    let title = title.trim();
    let chars = title.chars().count();
    if chars == 0 || chars > MAX_TITLE_CHARS {
        return Err(format!("title must be 1..={MAX_TITLE_CHARS} characters"));
    }
    if title.chars().any(char::is_control) {
        return Err("title must not contain control characters".into());
    }
    Ok(title.to_owned())
}

/// One canvas's definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanvasDef {
    pub id: CanvasId,
    pub width: u32,
    pub height: u32,
    /// RGB colours; wire colours are indexes into this.
    pub palette: Vec<[u8; 3]>,
    /// Shown in lobbies; plain text.
    pub title: Option<String>,
    /// Who may see it.
    pub visibility: Visibility,
}

/// Who may see a canvas (join it, read it, stream it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Visibility {
    /// Every user with a role: the token's for it, the token's `role`, or
    /// the gateway's default.
    #[default]
    Public,
    /// Users with a role for this canvas alone: the token's `roles` claim,
    /// or a membership.
    Members,
    /// The app's join hook decides (the token's `roles` claim first).
    Hook,
}

impl Visibility {
    /// The stored and wire name.
    pub fn name(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Members => "members",
            Visibility::Hook => "hook",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Result<Visibility, String> {
        match s {
            "public" => Ok(Visibility::Public),
            "members" => Ok(Visibility::Members),
            "hook" => Ok(Visibility::Hook),
            other => Err(format!(
                "{other:?} is not a visibility (public, members, hook)"
            )),
        }
    }
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
            "title": self.title,
            "visibility": self.visibility.name(),
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
    /// Definitions and when they were read (or last revalidated).
    cache: Arc<RwLock<Cache>>,
}

/// A definition, when the query that read it started, and when it was
/// last read or sent for revalidation (the TTL counts from this).
type Cache = HashMap<CanvasId, (Arc<CanvasDef>, Instant, Instant)>;

/// The columns [`row_to_def`] reads, in order.
const COLUMNS: &str = "width, height, palette, title, visibility";

fn row_to_def(id: &CanvasId, row: &tokio_postgres::Row, first: usize) -> CanvasDef {
    let palette: Vec<String> = row.get(first + 2);
    CanvasDef {
        id: id.clone(),
        width: u32::try_from(row.get::<_, i32>(first)).unwrap_or(1),
        height: u32::try_from(row.get::<_, i32>(first + 1)).unwrap_or(1),
        palette: palette
            .iter()
            .map(|c| parse_rgb(c).unwrap_or([0, 0, 0]))
            .collect(),
        title: row.get(first + 3),
        visibility: Visibility::parse(row.get(first + 4)).unwrap_or(Visibility::Members),
    }
}

fn unavailable(e: tokio_postgres::Error) -> CatalogueError {
    CatalogueError::Unavailable(e.to_string())
}

impl Stored {
    async fn conn(&self) -> Result<deadpool_postgres::Object, CatalogueError> {
        connect(&self.pool).await
    }
}

async fn connect(
    pool: &deadpool_postgres::Pool,
) -> Result<deadpool_postgres::Object, CatalogueError> {
    pool.get()
        .await
        .map_err(|e| CatalogueError::Unavailable(e.to_string()))
}

/// A live (not deleted) canvas's definition from the database.
async fn load(
    pool: &deadpool_postgres::Pool,
    id: &CanvasId,
) -> Result<Option<Arc<CanvasDef>>, CatalogueError> {
    let row = connect(pool)
        .await?
        .query_opt(
            &format!("SELECT {COLUMNS} FROM canvases WHERE id = $1 AND deleted_at IS NULL"),
            &[&id.as_str()],
        )
        .await
        .map_err(unavailable)?;
    Ok(row.map(|r| Arc::new(row_to_def(id, &r, 0))))
}

/// Puts what the database said, by a query started `at`, into the cache.
fn remember(cache: &RwLock<Cache>, id: &CanvasId, found: &Option<Arc<CanvasDef>>, at: Instant) {
    let mut cache = cache.write();
    match found {
        Some(def) => {
            if cache.len() >= CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(id.clone(), (def.clone(), at, at));
        }
        None => {
            cache.remove(id);
        }
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
                cache: Arc::new(RwLock::new(HashMap::new())),
            }),
        }
    }

    fn default_def(&self, id: &CanvasId) -> CanvasDef {
        CanvasDef {
            id: id.clone(),
            width: self.default.width,
            height: self.default.height,
            palette: default_palette(self.default.palette_size),
            title: None,
            visibility: Visibility::Public,
        }
    }

    /// The canvas's definition, or `None` if it does not exist.
    ///
    /// A cached entry older than [`CACHE_TTL`] is still answered at once,
    /// and revalidated in the background (stale while revalidating): the
    /// hot path never waits on the database, and a database outage keeps
    /// known canvases usable.
    pub async fn get(&self, id: &CanvasId) -> Result<Option<Arc<CanvasDef>>, CatalogueError> {
        let Some(store) = &self.store else {
            return Ok(Some(Arc::new(self.default_def(id))));
        };
        let cached = store.cache.read().get(id).cloned();
        if let Some((def, _, checked)) = cached {
            if checked.elapsed() >= CACHE_TTL {
                self.revalidate(store, id);
            }
            return Ok(Some(def));
        }
        self.fresh(id).await
    }

    /// False only when the catalogue says the canvas is gone (deleted since
    /// it was joined); true without a catalogue, and when the catalogue
    /// cannot answer (writes go on through a Postgres outage). Cheap: a
    /// cache lookup, no definition built.
    pub async fn exists(&self, id: &CanvasId) -> bool {
        match &self.store {
            None => true,
            Some(_) => !matches!(self.get(id).await, Ok(None)),
        }
    }

    /// Re-reads a cached definition in the background. The entry is stamped
    /// first, so one refresh runs at a time and a failed one is retried
    /// after another [`CACHE_TTL`].
    fn revalidate(&self, store: &Stored, id: &CanvasId) {
        {
            let mut cache = store.cache.write();
            match cache.get_mut(id) {
                Some((_, _, checked)) if checked.elapsed() >= CACHE_TTL => {
                    *checked = Instant::now()
                }
                _ => return,
            }
        }
        let (pool, cache, id) = (store.pool.clone(), store.cache.clone(), id.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            match load(&pool, &id).await {
                Ok(found) => remember(&cache, &id, &found, started),
                Err(err) => {
                    tracing::debug!(canvas = %id, error = %err, "canvas revalidation failed")
                }
            }
        });
    }

    /// The canvas's definition read from the database now, refreshing the
    /// cache.
    pub async fn fresh(&self, id: &CanvasId) -> Result<Option<Arc<CanvasDef>>, CatalogueError> {
        let Some(store) = &self.store else {
            return Ok(Some(Arc::new(self.default_def(id))));
        };
        let started = Instant::now();
        let found = load(&store.pool, id).await?;
        remember(&store.cache, id, &found, started);
        Ok(found)
    }

    /// The canvas's definition as the database held it at `since` or
    /// later: from the cache when its entry comes from a query started
    /// then or after, else read now. The connections on one canvas told
    /// of a change at once check it with one query.
    pub async fn read_since(
        &self,
        id: &CanvasId,
        since: Instant,
    ) -> Result<Option<Arc<CanvasDef>>, CatalogueError> {
        if let Some(store) = &self.store
            && let Some((def, read, _)) = store.cache.read().get(id)
            && *read >= since
        {
            return Ok(Some(def.clone()));
        }
        self.fresh(id).await
    }

    /// Whether unknown canvases are created on first use.
    pub fn auto_creates(&self) -> bool {
        self.store.as_ref().is_some_and(|s| s.auto_create)
    }

    /// Creates a canvas with the default geometry on its first use (when
    /// the catalogue auto-creates; the caller has paid for it); its
    /// definition, or `None` if it cannot be (auto-creation off, or the id
    /// belongs to a deleted canvas).
    pub async fn auto_create(
        &self,
        id: &CanvasId,
    ) -> Result<Option<Arc<CanvasDef>>, CatalogueError> {
        if !self.auto_creates() {
            return Ok(None);
        }
        self.create(self.default_def(id)).await?;
        self.fresh(id).await
    }

    /// Sets a canvas's title (`None` clears it); the new definition, or
    /// `None` if there is no such canvas.
    pub async fn set_title(
        &self,
        id: &CanvasId,
        title: Option<&str>,
    ) -> Result<Option<Arc<CanvasDef>>, CatalogueError> {
        self.update(id, "title", &title).await
    }

    /// Sets a canvas's visibility; the new definition, or `None` if there
    /// is no such canvas.
    pub async fn set_visibility(
        &self,
        id: &CanvasId,
        visibility: Visibility,
    ) -> Result<Option<Arc<CanvasDef>>, CatalogueError> {
        self.update(id, "visibility", &visibility.name()).await
    }

    /// Sets one column of a live canvas (a fixed name, never input); the
    /// new definition, or `None` if there is no such canvas.
    async fn update(
        &self,
        id: &CanvasId,
        column: &'static str,
        value: &(dyn tokio_postgres::types::ToSql + Sync),
    ) -> Result<Option<Arc<CanvasDef>>, CatalogueError> {
        let Some(store) = &self.store else {
            return Err(CatalogueError::NoCatalogue);
        };
        let changed = store
            .conn()
            .await?
            .execute(
                &format!("UPDATE canvases SET {column} = $2 WHERE id = $1 AND deleted_at IS NULL"),
                &[&id.as_str(), value],
            )
            .await
            .map_err(unavailable)?;
        if changed == 0 {
            return Ok(None);
        }
        self.fresh(id).await
    }

    /// Deletes a canvas (its id stays taken); false if there was none.
    pub async fn delete(&self, id: &CanvasId) -> Result<bool, CatalogueError> {
        let Some(store) = &self.store else {
            return Err(CatalogueError::NoCatalogue);
        };
        let deleted = store
            .conn()
            .await?
            .execute(
                "UPDATE canvases SET deleted_at = now() WHERE id = $1 AND deleted_at IS NULL",
                &[&id.as_str()],
            )
            .await
            .map_err(unavailable)?;
        store.cache.write().remove(id);
        Ok(deleted == 1)
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
                "INSERT INTO canvases (id, width, height, palette, title, visibility)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
                &[
                    &def.id.as_str(),
                    &(def.width as i32),
                    &(def.height as i32),
                    &palette,
                    &def.title,
                    &def.visibility.name(),
                ],
            )
            .await
            .map_err(unavailable)?;
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
                &format!(
                    "SELECT id, {COLUMNS} FROM canvases WHERE id > $1 AND deleted_at IS NULL
                     ORDER BY id LIMIT $2"
                ),
                &[&after.unwrap_or(""), &(limit as i64)],
            )
            .await
            .map_err(unavailable)?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let id: String = r.get(0);
                let id = CanvasId::new(&id).ok()?;
                Some(row_to_def(&id, &r, 1))
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

    #[test]
    fn titles_are_trimmed_bounded_text() {
        assert_eq!(
            check_title("  Dungeon map <1> ").as_deref(),
            Ok("Dungeon map <1>")
        );
        assert!(check_title(&"é".repeat(200)).is_ok());
        for bad in ["", "   ", "a\u{7}b", "line\nbreak"] {
            assert!(check_title(bad).is_err(), "{bad:?}");
        }
        assert!(check_title(&"x".repeat(201)).is_err());
    }
}
