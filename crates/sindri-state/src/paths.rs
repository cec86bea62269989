//! Where the state file lives.
//!
//! The rules are a pure function of three environment values so they can be tested
//! without touching the process environment.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use sindri_core::{Error, Result};

/// Overrides the state directory (tests, CI, several sindri installs side by side).
pub const STATE_DIR_ENV: &str = "SINDRI_STATE_DIR";

/// The XDG base directory for state; sindri uses `$XDG_STATE_HOME/sindri`.
pub const XDG_STATE_HOME_ENV: &str = "XDG_STATE_HOME";

/// The state database's file name inside the state directory.
pub const STATE_FILE_NAME: &str = "state.db";

/// The state directory for the current process environment.
pub fn default_state_dir() -> Result<PathBuf> {
    resolve_state_dir(
        std::env::var_os(STATE_DIR_ENV).as_deref(),
        std::env::var_os(XDG_STATE_HOME_ENV).as_deref(),
        home_dir().as_deref(),
    )
}

/// The state directory given the values of `SINDRI_STATE_DIR`, `XDG_STATE_HOME` and
/// the home directory.
///
/// `SINDRI_STATE_DIR` wins and is used as given. Otherwise `$XDG_STATE_HOME/sindri`,
/// then `~/.local/state/sindri`. Empty values count as unset, and a relative
/// `XDG_STATE_HOME` is ignored, as the XDG base directory specification requires.
pub fn resolve_state_dir(
    sindri_state_dir: Option<&OsStr>,
    xdg_state_home: Option<&OsStr>,
    home: Option<&OsStr>,
) -> Result<PathBuf> {
    if let Some(dir) = sindri_state_dir.filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    if let Some(xdg) = xdg_state_home.map(Path::new).filter(|p| p.is_absolute()) {
        return Ok(xdg.join("sindri"));
    }
    match home.filter(|v| !v.is_empty()) {
        Some(home) => Ok(Path::new(home).join(".local/state/sindri")),
        None => Err(Error::internal(
            "cannot find a directory for sindri's state: SINDRI_STATE_DIR and XDG_STATE_HOME are unset and the home directory is unknown",
        )
        .with_hint("set SINDRI_STATE_DIR to a writable directory, e.g. `export SINDRI_STATE_DIR=$PWD/.sindri-state`")),
    }
}

/// The home directory from `HOME`; sindri's state is per user, and `HOME` is what the
/// user's shell and every XDG-aware tool agree on.
fn home_dir() -> Option<OsString> {
    std::env::var_os("HOME").filter(|h| !h.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(sindri: Option<&str>, xdg: Option<&str>, home: Option<&str>) -> Result<PathBuf> {
        resolve_state_dir(
            sindri.map(OsStr::new),
            xdg.map(OsStr::new),
            home.map(OsStr::new),
        )
    }

    #[test]
    fn sindri_state_dir_wins_over_everything() {
        let dir = resolve(Some("/srv/sindri"), Some("/x/state"), Some("/home/u")).unwrap();
        assert_eq!(dir, PathBuf::from("/srv/sindri"));
    }

    #[test]
    fn sindri_state_dir_is_used_as_given_even_relative() {
        let dir = resolve(Some("state-here"), None, Some("/home/u")).unwrap();
        assert_eq!(dir, PathBuf::from("state-here"));
    }

    #[test]
    fn xdg_state_home_gets_a_sindri_subdirectory() {
        let dir = resolve(None, Some("/x/state"), Some("/home/u")).unwrap();
        assert_eq!(dir, PathBuf::from("/x/state/sindri"));
    }

    #[test]
    fn falls_back_to_local_state_under_home() {
        let dir = resolve(None, None, Some("/home/u")).unwrap();
        assert_eq!(dir, PathBuf::from("/home/u/.local/state/sindri"));
    }

    #[test]
    fn empty_values_count_as_unset() {
        let dir = resolve(Some(""), Some(""), Some("/home/u")).unwrap();
        assert_eq!(dir, PathBuf::from("/home/u/.local/state/sindri"));
    }

    #[test]
    fn relative_xdg_state_home_is_ignored() {
        let dir = resolve(None, Some("relative/state"), Some("/home/u")).unwrap();
        assert_eq!(dir, PathBuf::from("/home/u/.local/state/sindri"));
    }

    #[test]
    fn no_location_at_all_is_an_error_with_a_hint() {
        let err = resolve(None, None, None).unwrap_err();
        assert_eq!(err.kind(), sindri_core::ErrorKind::Internal);
        assert!(err.message().contains("SINDRI_STATE_DIR"), "{err}");
        assert!(err.hint().unwrap_or("").contains("SINDRI_STATE_DIR"));
    }
}
