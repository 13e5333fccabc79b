//! Users of the pages kept in the state directory (`users.toml`), beside the configuration
//! file's `[[web.user]]`: made by `mailtrail user add` and, on a first run with no user
//! anywhere, an `admin` with a random password. Only argon2id hashes are kept. The file is
//! written whole — a temporary file, synced, then renamed over it — readable by its owner only.

use super::WebUser;
use std::{
    io::Write,
    path::{Path, PathBuf},
};

/// The file's name in the state directory.
pub const USERS_FILE: &str = "users.toml";

#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error("{path}: {source}", path = path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}", path = path.display())]
    Invalid { path: PathBuf, message: String },
    #[error("user `{name}` exists already")]
    Exists { name: String },
    #[error("no user `{name}` in {path} (users of the configuration file are changed there)", path = path.display())]
    Unknown { name: String, path: PathBuf },
    #[error("user `{name}` is defined in {config}:{line} ([[web.user]]): one name, one user", config = config.display())]
    InConfig {
        name: String,
        config: PathBuf,
        line: usize,
    },
    #[error("`{name}` is not a user name: letters, digits, `.`, `_`, `-` and `@`, at most 64")]
    BadName { name: String },
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default, rename = "user")]
    users: Vec<Stored>,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    name: String,
    password_hash: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    domains: Vec<String>,
}

/// The users of the file, as read.
#[derive(Debug, Default)]
pub struct Users {
    path: PathBuf,
    users: Vec<WebUser>,
    /// The file exists (a first run makes one only when it does not).
    exists: bool,
}

impl Users {
    /// The users file of a state directory.
    pub fn path_in(state_dir: &Path) -> PathBuf {
        state_dir.join(USERS_FILE)
    }

    /// Reads the file; a missing one holds nobody.
    pub fn load(path: &Path) -> Result<Users, UsersError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Users {
                    path: path.to_path_buf(),
                    users: Vec::new(),
                    exists: false,
                });
            }
            Err(source) => {
                return Err(UsersError::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let file: File = toml::from_str(&text).map_err(|e| UsersError::Invalid {
            path: path.to_path_buf(),
            message: e.message().to_string(),
        })?;
        let users = file
            .users
            .into_iter()
            .map(|u| WebUser {
                name: u.name,
                password_hash: u.password_hash,
                domains: u.domains,
            })
            .collect();
        Ok(Users {
            path: path.to_path_buf(),
            users,
            exists: true,
        })
    }

    pub fn exists(&self) -> bool {
        self.exists
    }

    pub fn users(&self) -> &[WebUser] {
        &self.users
    }

    pub fn find(&self, name: &str) -> Option<&WebUser> {
        self.users.iter().find(|u| u.name == name)
    }

    /// Adds a user; an existing name is an error.
    pub fn add(&mut self, user: WebUser) -> Result<(), UsersError> {
        check_name(&user.name)?;
        if self.find(&user.name).is_some() {
            return Err(UsersError::Exists { name: user.name });
        }
        self.users.push(user);
        Ok(())
    }

    pub fn set_password(&mut self, name: &str, password_hash: String) -> Result<(), UsersError> {
        match self.users.iter_mut().find(|u| u.name == name) {
            Some(user) => {
                user.password_hash = password_hash;
                Ok(())
            }
            None => Err(self.unknown(name)),
        }
    }

    pub fn remove(&mut self, name: &str) -> Result<(), UsersError> {
        let before = self.users.len();
        self.users.retain(|u| u.name != name);
        match self.users.len() < before {
            true => Ok(()),
            false => Err(self.unknown(name)),
        }
    }

    fn unknown(&self, name: &str) -> UsersError {
        UsersError::Unknown {
            name: name.to_string(),
            path: self.path.clone(),
        }
    }

    /// Writes the file whole: a temporary file beside it (mode 0600), synced, then renamed.
    pub fn save(&mut self) -> Result<(), UsersError> {
        let io = |source| UsersError::Io {
            path: self.path.clone(),
            source,
        };
        let file = File {
            users: self
                .users
                .iter()
                .map(|u| Stored {
                    name: u.name.clone(),
                    password_hash: u.password_hash.clone(),
                    domains: u.domains.clone(),
                })
                .collect(),
        };
        let text = toml::to_string(&file).map_err(|e| UsersError::Invalid {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = self.path.with_extension("toml.tmp");
        let mut out = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io)?
        };
        out.write_all(b"# Users of mailtrail's pages: managed with `mailtrail user`.\n")
            .and_then(|_| out.write_all(text.as_bytes()))
            .and_then(|_| out.sync_all())
            .map_err(io)?;
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        self.exists = true;
        Ok(())
    }
}

/// A name that is safe in a log line, a cookie and a file.
fn check_name(name: &str) -> Result<(), UsersError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c));
    match ok {
        true => Ok(()),
        false => Err(UsersError::BadName {
            name: name.chars().filter(|c| !c.is_control()).take(80).collect(),
        }),
    }
}

/// A random password for a first run: 20 characters of letters and digits (119 bits).
pub fn random_password() -> Result<String, String> {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut bytes = [0u8; 20];
    getrandom::fill(&mut bytes).map_err(|e| e.to_string())?;
    // 57 letters: the bias of a byte modulo 57 is below 1 %, immaterial at 20 characters.
    Ok(bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> WebUser {
        WebUser {
            name: name.into(),
            password_hash: format!("$argon2id$hash-of-{name}"),
            domains: Vec::new(),
        }
    }

    #[test]
    fn users_are_written_whole_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = Users::path_in(dir.path());
        let mut users = Users::load(&path).unwrap();
        assert!(!users.exists() && users.users().is_empty());
        users.add(user("admin")).unwrap();
        users
            .add(WebUser {
                domains: vec!["a.example".into()],
                ..user("alice")
            })
            .unwrap();
        users.save().unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let mut again = Users::load(&path).unwrap();
        assert!(again.exists());
        assert_eq!(again.users().len(), 2);
        assert_eq!(again.find("alice").unwrap().domains, ["a.example"]);
        assert!(matches!(
            again.add(user("alice")),
            Err(UsersError::Exists { .. })
        ));
        assert!(matches!(
            again.set_password("bob", "x".into()),
            Err(UsersError::Unknown { .. })
        ));
        again.set_password("admin", "$argon2id$new".into()).unwrap();
        again.remove("alice").unwrap();
        assert!(matches!(
            again.remove("alice"),
            Err(UsersError::Unknown { .. })
        ));
        again.save().unwrap();
        let last = Users::load(&path).unwrap();
        assert_eq!(last.users().len(), 1);
        assert_eq!(last.find("admin").unwrap().password_hash, "$argon2id$new");
    }

    #[test]
    fn bad_names_and_bad_files_are_errors() {
        let mut users = Users::default();
        for bad in ["", "a b", "x\ny", "<script>", &"n".repeat(65)] {
            assert!(
                matches!(users.add(user(bad)), Err(UsersError::BadName { .. })),
                "{bad:?}"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let path = Users::path_in(dir.path());
        std::fs::write(&path, "[[user]]\nname = 1\n").unwrap();
        let e = Users::load(&path).unwrap_err().to_string();
        assert!(e.starts_with(&path.display().to_string()), "{e}");
    }

    #[test]
    fn random_passwords_differ() {
        let (a, b) = (random_password().unwrap(), random_password().unwrap());
        assert_eq!(a.len(), 20);
        assert_ne!(a, b);
    }
}
