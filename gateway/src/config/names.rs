//! Names derived from the one declaration of each setting ([`Config`]'s
//! fields): the `EASEL_X (--x)` that a configuration error names, and the
//! Markdown table of every setting that the README shows.

use super::Config;
use clap::CommandFactory;
use shared::config::{ConfigError, bad, check_range};

/// Looks settings up by their field name in the flags' declaration.
pub(crate) struct Names(clap::Command);

impl Names {
    pub fn new() -> Self {
        Names(Config::command())
    }

    /// `EASEL_X (--x)` for field `id`.
    pub fn of(&self, id: &str) -> String {
        let arg = self.0.get_arguments().find(|a| a.get_id() == id);
        debug_assert!(arg.is_some(), "no setting {id}");
        match arg {
            Some(a) => match (a.get_env(), a.get_long()) {
                (Some(env), Some(long)) => format!("{} (--{long})", env.to_string_lossy()),
                (None, Some(long)) => format!("--{long}"),
                _ => id.to_owned(),
            },
            None => id.to_owned(),
        }
    }

    /// An error naming field `id`.
    pub fn bad(&self, id: &str, message: impl Into<String>) -> ConfigError {
        bad(self.of(id), message)
    }

    /// `value` of field `id` if it lies in `min..=max`, else an error
    /// naming the setting.
    pub fn range<T: PartialOrd + std::fmt::Display + Copy>(
        &self,
        id: &str,
        value: T,
        min: T,
        max: T,
    ) -> Result<T, ConfigError> {
        check_range(&self.of(id), value, min, max)
    }
}

/// Every setting with an environment variable, as the README's Markdown
/// table: variable, flag, default and meaning, in declaration order.
pub fn table() -> String {
    let command = Config::command();
    let mut out = String::from("| variable | flag | default | meaning |\n|---|---|---|---|\n");
    for arg in command.get_arguments() {
        let (Some(env), Some(long)) = (arg.get_env(), arg.get_long()) else {
            continue;
        };
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        let default = match defaults.join(",").as_str() {
            "" => "none".to_owned(),
            d => format!("`{d}`"),
        };
        let help = arg
            .get_long_help()
            .or(arg.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default();
        let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
        out.push_str(&format!(
            "| `{}` | `--{long}` | {default} | {help} |\n",
            env.to_string_lossy()
        ));
    }
    out
}
