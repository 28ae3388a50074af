//! The roles a user holds on a canvas.

use serde::{Deserialize, Serialize};

/// A role on a canvas, from the token (`roles`, then `role`) or the
/// gateway's default. Ordered: each role may do what the one before may.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ts_rs::TS,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// No access: the canvas is refused as if it did not exist.
    None,
    /// May view, chat and show a cursor.
    Spectator,
    /// May also draw and move tokens.
    Player,
    /// Game master: may also clear, manage fog and remove others' objects.
    Gm,
}

impl Role {
    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            Role::None => "none",
            Role::Spectator => "spectator",
            Role::Player => "player",
            Role::Gm => "gm",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "none" => Ok(Role::None),
            "spectator" => Ok(Role::Spectator),
            "player" => Ok(Role::Player),
            "gm" => Ok(Role::Gm),
            other => Err(format!(
                "{other:?} is not a role (none, spectator, player, gm)"
            )),
        }
    }
}
