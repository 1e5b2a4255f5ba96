//! [`Secret`]: a setting that never shows in `Debug` output or logs.

use std::fmt;

use serde::Deserialize;

/// A string that never shows in `Debug` output or logs.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Serialized (e.g. by `glue config show`) as `[redacted]`, or `""` when empty.
impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(if self.0.is_empty() { "" } else { "[redacted]" })
    }
}

/// A database URL fit for a log line: the password of `scheme://user:password@host/…` and any
/// `password=` parameter replaced by `[redacted]`.
pub fn url_without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    // The authority ends at the first `/` (libpq and MySQL's parser allow `?` and `:` in a
    // password); the user information at the last `@` in it.
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:[redacted]@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_string(),
    };
    let path = match path.split_once('?') {
        Some((before, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                        format!("{key}=[redacted]")
                    }
                    _ => pair.to_string(),
                })
                .collect();
            format!("{before}?{}", query.join("&"))
        }
        None => path.to_string(),
    };
    format!("{scheme}://{authority}{path}")
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("\"\"")
        } else {
            f.write_str("[redacted]")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::url_without_password;

    #[test]
    fn a_database_url_is_logged_without_its_password() {
        assert_eq!(
            url_without_password("postgres://glue:s3cret@db:5432/shop?sslmode=require"),
            "postgres://glue:[redacted]@db:5432/shop?sslmode=require"
        );
        assert_eq!(
            url_without_password("mysql://glue:p%40ss:word@db/shop"),
            "mysql://glue:[redacted]@db/shop"
        );
        assert_eq!(
            url_without_password("postgres://db/shop?user=glue&password=s3cret"),
            "postgres://db/shop?user=glue&password=[redacted]"
        );
        assert_eq!(
            url_without_password("postgres://glue:p?ss@db/shop"),
            "postgres://glue:[redacted]@db/shop"
        );
        assert_eq!(url_without_password("var/glue.sqlite3"), "var/glue.sqlite3");
        assert_eq!(
            url_without_password("postgres://glue@db/shop"),
            "postgres://glue@db/shop"
        );
    }
}
