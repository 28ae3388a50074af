//! Canvas memberships: a user's role on a canvas, rows of `canvas_members`
//! managed through the server API. A `members` canvas admits the users
//! listed here (and those whose token names the canvas in `roles`).
//!
//! Memberships found are cached for [`CACHE_TTL`], the bound on how long a
//! removal made on another gateway goes unnoticed by new joins and reads
//! here; a missing membership is not cached, so a new one counts at once.
//! Live connections are told of every change at once (a signal on the
//! canvas's channel) and check again with [`Members::fresh_role`].

use crate::canvases::{CACHE_TTL, CatalogueError};
use parking_lot::RwLock;
use shared::CanvasId;
use shared::auth::Role;
use std::collections::HashMap;
use std::time::Instant;

/// Most lookups kept in the cache; beyond it the cache starts afresh.
const CACHE_LIMIT: usize = 100_000;

/// See the module documentation.
pub struct Members {
    pool: Option<deadpool_postgres::Pool>,
    cache: RwLock<HashMap<(CanvasId, String), (Role, Instant)>>,
}

/// One membership, as listed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Membership {
    pub user: String,
    pub role: Role,
}

fn unavailable(e: impl std::fmt::Display) -> CatalogueError {
    CatalogueError::Unavailable(e.to_string())
}

impl Members {
    /// Memberships kept in Postgres, or none at all without a database.
    pub fn new(pool: Option<deadpool_postgres::Pool>) -> Self {
        Members {
            pool,
            cache: RwLock::new(HashMap::new()),
        }
    }

    async fn conn(&self) -> Result<deadpool_postgres::Object, CatalogueError> {
        let pool = self.pool.as_ref().ok_or(CatalogueError::NoCatalogue)?;
        pool.get().await.map_err(unavailable)
    }

    /// The user's role on the canvas by membership, if any (cached).
    pub async fn role(
        &self,
        canvas: &CanvasId,
        user: &str,
    ) -> Result<Option<Role>, CatalogueError> {
        if self.pool.is_none() {
            return Ok(None);
        }
        let key = (canvas.clone(), user.to_owned());
        if let Some((role, read)) = self.cache.read().get(&key)
            && read.elapsed() < CACHE_TTL
        {
            return Ok(Some(*role));
        }
        self.fresh_role(canvas, user).await
    }

    /// The user's role on the canvas by membership, read now.
    pub async fn fresh_role(
        &self,
        canvas: &CanvasId,
        user: &str,
    ) -> Result<Option<Role>, CatalogueError> {
        if self.pool.is_none() {
            return Ok(None);
        }
        let row = self
            .conn()
            .await?
            .query_opt(
                "SELECT role FROM canvas_members WHERE canvas_id = $1 AND user_id = $2",
                &[&canvas.as_str(), &user],
            )
            .await
            .map_err(unavailable)?;
        let role = row.and_then(|r| r.get::<_, String>(0).parse::<Role>().ok());
        let mut cache = self.cache.write();
        let key = (canvas.clone(), user.to_owned());
        match role {
            Some(role) => {
                if cache.len() >= CACHE_LIMIT {
                    cache.clear();
                }
                cache.insert(key, (role, Instant::now()));
            }
            None => {
                cache.remove(&key);
            }
        }
        Ok(role)
    }

    /// Gives `user` `role` on a live canvas (replacing any earlier one);
    /// false when there is no such canvas.
    pub async fn set(
        &self,
        canvas: &CanvasId,
        user: &str,
        role: Role,
    ) -> Result<bool, CatalogueError> {
        let written = self
            .conn()
            .await?
            .execute(
                "INSERT INTO canvas_members (canvas_id, user_id, role)
                 SELECT id, $2, $3 FROM canvases WHERE id = $1 AND deleted_at IS NULL
                 ON CONFLICT (canvas_id, user_id)
                 DO UPDATE SET role = EXCLUDED.role, updated_at = now()",
                &[&canvas.as_str(), &user, &role.name()],
            )
            .await
            .map_err(unavailable)?;
        self.forget(canvas, user);
        Ok(written == 1)
    }

    /// Removes `user`'s membership; false when it had none.
    pub async fn remove(&self, canvas: &CanvasId, user: &str) -> Result<bool, CatalogueError> {
        let removed = self
            .conn()
            .await?
            .execute(
                "DELETE FROM canvas_members WHERE canvas_id = $1 AND user_id = $2",
                &[&canvas.as_str(), &user],
            )
            .await
            .map_err(unavailable)?;
        self.forget(canvas, user);
        Ok(removed == 1)
    }

    /// The canvas's memberships with user ids after `after`, in id order.
    pub async fn list(
        &self,
        canvas: &CanvasId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Membership>, CatalogueError> {
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT user_id, role FROM canvas_members WHERE canvas_id = $1 AND user_id > $2
                 ORDER BY user_id LIMIT $3",
                &[&canvas.as_str(), &after.unwrap_or(""), &(limit as i64)],
            )
            .await
            .map_err(unavailable)?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                Some(Membership {
                    user: r.get(0),
                    role: r.get::<_, String>(1).parse().ok()?,
                })
            })
            .collect())
    }

    /// `user`'s memberships among `canvases`.
    pub async fn roles_among(
        &self,
        user: &str,
        canvases: &[&str],
    ) -> Result<HashMap<String, Role>, CatalogueError> {
        if self.pool.is_none() || canvases.is_empty() {
            return Ok(HashMap::new());
        }
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT canvas_id, role FROM canvas_members WHERE user_id = $1 AND canvas_id = ANY($2)",
                &[&user, &canvases],
            )
            .await
            .map_err(unavailable)?;
        Ok(rows
            .iter()
            .filter_map(|r| Some((r.get(0), r.get::<_, String>(1).parse().ok()?)))
            .collect())
    }

    fn forget(&self, canvas: &CanvasId, user: &str) {
        self.cache
            .write()
            .remove(&(canvas.clone(), user.to_owned()));
    }
}
