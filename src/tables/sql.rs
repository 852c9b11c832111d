//! The SQL catalog (`iceberg_catalog_type: sql`): the tables' current metadata files kept
//! in a database, a SQLite file or PostgreSQL, in the layout Iceberg's JDBC catalog and
//! pyiceberg's `SqlCatalog` share (tables `iceberg_tables` and
//! `iceberg_namespace_properties`, every row keyed by a catalog name), so those open the
//! tables target-s3 writes, and the other way round.
//!
//! Owns: the database URI (its password kept apart, as a secret), the catalog name,
//! connecting, and the pointer swap of commits the library cannot build (overwrite's). Must not touch: tables and commits (the parent module) or file access
//! (`storage`: table files go through target-s3's own S3 client here too).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use iceberg::{Catalog, CatalogBuilder, ErrorKind, TableIdent, TableRequirement, TableUpdate};
use iceberg_catalog_sql::SqlCatalogBuilder;
use sqlx::Connection;

use super::commit::{Committer, stage};
use super::storage::S3Tables;
use super::{TableSettings, catalog_error};
use crate::error::Result;
use crate::secret::Secret;

/// The catalog name the rows are keyed by, unless `iceberg_catalog_properties` gives
/// `name`: pyiceberg's `load_catalog()` opens the catalog named `default`.
pub const DEFAULT_NAME: &str = "default";
const NAME_PROPERTY: &str = "name";
/// Pool settings the catalog library reads; it panics on a value that does not parse,
/// so they are checked first.
const POOL_PROPERTIES: &[&str] = &[
    "pool.max-connections",
    "pool.idle-timeout",
    "pool.test-before-acquire",
];
/// How long the first connection may take before the run stops.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The URI forms accepted, for error messages.
pub const URI_FORMS: &str = "\"sqlite:////absolute/path/catalog.db\" or \"postgresql://user[:password]@host[:port]/database\"";

/// Checks the SQL catalog's settings, and takes the password out of a PostgreSQL URI into
/// `credential` (where `iceberg_credential` may give it instead), so the URI that messages
/// show never holds it.
pub fn check(mut settings: TableSettings) -> std::result::Result<TableSettings, String> {
    let (uri, password) = split_password(&settings.uri).ok_or_else(|| {
        // Only the scheme: the rest may hold a password.
        let scheme = settings.uri.split(':').next().unwrap_or_default();
        format!("key \"iceberg_catalog_uri\" is a {scheme:?} URI; expected {URI_FORMS}")
    })?;
    settings.credential = match (password, settings.credential.take()) {
        (Some(_), Some(_)) => {
            return Err(
                "the database password is given twice, in iceberg_catalog_uri and iceberg_credential: keep one"
                    .into(),
            );
        }
        (Some(password), None) => Some(password),
        (None, credential) => credential,
    };
    if settings.credential.is_some() && uri.starts_with("sqlite:") {
        return Err(
            "iceberg_credential is a database password, and a SQLite file takes none: drop it"
                .into(),
        );
    }
    if settings.credential.is_some() && !uri.contains('@') {
        return Err(format!(
            "iceberg_credential is the database password, for the user iceberg_catalog_uri names, but it names none: {uri:?}"
        ));
    }
    settings.uri = uri;
    let warehouse = settings.warehouse.as_deref().unwrap_or_default();
    if super::storage::split_s3_path(&format!("{}/x", warehouse.trim_end_matches('/'))).is_none() {
        return Err(format!(
            "key \"iceberg_warehouse\" has value {warehouse:?}; expected the s3:// location new tables go under, such as \"s3://bucket/warehouse\""
        ));
    }
    settings.warehouse = Some(warehouse.trim_end_matches('/').to_owned());
    for name in POOL_PROPERTIES {
        if let Some(value) = settings.properties.get(*name) {
            let fits = match *name {
                "pool.test-before-acquire" => value.parse::<bool>().is_ok(),
                _ => value.parse::<u64>().is_ok_and(|n| n > 0),
            };
            if !fits {
                return Err(format!(
                    "iceberg_catalog_properties: {name:?} has value {value:?}; expected {}",
                    if name.ends_with("acquire") {
                        "true or false"
                    } else {
                        "a whole number above 0"
                    }
                ));
            }
        }
    }
    Ok(settings)
}

/// The catalog in the database at `settings.uri` (made there if missing, as pyiceberg
/// does), and its committer for overwrite's snapshots.
pub async fn sql_catalog(
    settings: &TableSettings,
    storage: Arc<S3Tables>,
) -> Result<(Arc<dyn Catalog>, Arc<dyn Committer>)> {
    let failed = |e: iceberg::Error| catalog_error(settings, "connecting to", &"the database", e);
    let uri = connect_uri(&settings.uri, settings.credential.as_ref());
    // The library's pool retries a refused connection until its own timeout and then
    // reports only that; one plain connection first says what is wrong, at once.
    reach(&uri).await.map_err(failed)?;
    let mut properties: HashMap<String, String> = settings.properties.clone().into_iter().collect();
    let name = properties
        .remove(NAME_PROPERTY)
        .unwrap_or_else(|| DEFAULT_NAME.into());
    let bind_style = if uri.starts_with("sqlite:") {
        "QMark"
    } else {
        "DollarNumeric"
    };
    properties
        .entry("sql_bind_style".into())
        .or_insert_with(|| bind_style.into());
    properties.insert("uri".into(), uri.clone());
    if let Some(warehouse) = &settings.warehouse {
        properties.insert("warehouse".into(), warehouse.clone());
    }
    let catalog: Arc<dyn Catalog> = Arc::new(
        SqlCatalogBuilder::default()
            .with_storage_factory(storage)
            .load(name.clone(), properties)
            .await
            .map_err(failed)?,
    );
    let committer = SqlCommitter {
        catalog: catalog.clone(),
        uri: Secret::new(uri),
        name,
    };
    Ok((catalog, Arc::new(committer)))
}

/// Commits on the catalog's tables as the library's SQL catalog makes them: the next
/// metadata file written, then the table's row pointed at it in one UPDATE that names
/// the location it replaces, so a row another writer moved first is left alone (a
/// conflict, retried on the fresh table).
struct SqlCommitter {
    catalog: Arc<dyn Catalog>,
    /// The connection URI, with the password in it.
    uri: Secret,
    name: String,
}

#[async_trait]
impl Committer for SqlCommitter {
    async fn commit(
        &self,
        ident: &TableIdent,
        requirements: Vec<TableRequirement>,
        updates: Vec<TableUpdate>,
    ) -> iceberg::Result<()> {
        let table = self.catalog.load_table(ident).await?;
        let current = table.metadata_location_result()?.to_owned();
        let (staged, at) = stage(table, requirements, updates)?;
        staged.metadata().write_to(staged.file_io(), &at).await?;
        let at = at.to_string();
        let failed = |e: sqlx::Error| iceberg::Error::new(ErrorKind::Unexpected, e.to_string());
        let mut connection = sqlx::AnyConnection::connect(self.uri.expose())
            .await
            .map_err(failed)?;
        let namespace = ident.namespace().join(".");
        let values = [
            &at,
            &current,
            &self.name,
            ident.name(),
            &namespace,
            &current,
        ];
        let mut query = sqlx::query(self.update_statement());
        for value in values {
            query = query.bind(value.to_owned());
        }
        let updated = query.execute(&mut connection).await.map_err(failed)?;
        let _ = connection.close().await;
        if updated.rows_affected() == 0 {
            let _ = staged.file_io().delete(&at).await;
            return Err(iceberg::Error::new(
                ErrorKind::CatalogCommitConflicts,
                format!("table {ident} was committed to by another writer first"),
            )
            .with_retryable(true));
        }
        Ok(())
    }
}

impl SqlCommitter {
    /// The JDBC layout's pointer swap, in the database's own placeholder style.
    fn update_statement(&self) -> &'static str {
        if self.uri.expose().starts_with("sqlite:") {
            "UPDATE iceberg_tables SET metadata_location = ?, previous_metadata_location = ? \
             WHERE catalog_name = ? AND table_name = ? AND table_namespace = ? \
             AND (iceberg_type = 'TABLE' OR iceberg_type IS NULL) AND metadata_location = ?"
        } else {
            "UPDATE iceberg_tables SET metadata_location = $1, previous_metadata_location = $2 \
             WHERE catalog_name = $3 AND table_name = $4 AND table_namespace = $5 \
             AND (iceberg_type = 'TABLE' OR iceberg_type IS NULL) AND metadata_location = $6"
        }
    }
}

/// One connection to the database, closed again.
async fn reach(uri: &str) -> iceberg::Result<()> {
    sqlx::any::install_default_drivers();
    let unreachable = |message: String| iceberg::Error::new(ErrorKind::Unexpected, message);
    match tokio::time::timeout(CONNECT_TIMEOUT, sqlx::AnyConnection::connect(uri)).await {
        Err(_) => Err(unreachable(format!(
            "no connection within {} s",
            CONNECT_TIMEOUT.as_secs()
        ))),
        Ok(Err(e)) => Err(unreachable(e.to_string())),
        Ok(Ok(connection)) => {
            let _ = connection.close().await;
            Ok(())
        }
    }
}

/// The URI to connect with: the password put back, and a SQLite file made if missing
/// (unless the URI says otherwise with its own `mode`).
fn connect_uri(uri: &str, password: Option<&Secret>) -> String {
    if uri.starts_with("sqlite:") {
        if uri.contains("mode=") {
            return uri.to_owned();
        }
        let joiner = if uri.contains('?') { '&' } else { '?' };
        return format!("{uri}{joiner}mode=rwc");
    }
    match (password, uri.split_once("://")) {
        (Some(password), Some((scheme, rest))) => match rest.split_once('@') {
            Some((user, host)) => {
                let password = percent_encode(password.expose());
                format!("{scheme}://{user}:{password}@{host}")
            }
            None => uri.to_owned(),
        },
        _ => uri.to_owned(),
    }
}

/// A SQLite or PostgreSQL URI without its password, and the password (percent-decoded);
/// None for any other URI.
fn split_password(uri: &str) -> Option<(String, Option<Secret>)> {
    if let Some(path) = uri.strip_prefix("sqlite:") {
        return (!path.trim_start_matches('/').is_empty()).then(|| (uri.to_owned(), None));
    }
    let (scheme, rest) = uri.split_once("://")?;
    if !matches!(scheme, "postgres" | "postgresql") {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return (!authority.is_empty()).then(|| (uri.to_owned(), None));
    };
    if host.is_empty() {
        return None;
    }
    let (user, password) = match userinfo.split_once(':') {
        Some((user, password)) => (user, Some(Secret::new(percent_decode(password)))),
        None => (userinfo, None),
    };
    Some((format!("{scheme}://{user}@{host}{tail}"), password))
}

/// Every byte but the URI's unreserved characters as `%XX`.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(uri: &str) -> Option<(String, Option<String>)> {
        split_password(uri).map(|(shown, p)| (shown, p.map(|p| p.expose().to_owned())))
    }

    #[test]
    fn the_password_comes_out_of_the_uri_and_goes_back_in_encoded() {
        assert_eq!(
            split("postgresql://loader:p%40ss:w@db.internal:5432/lake?sslmode=require"),
            Some((
                "postgresql://loader@db.internal:5432/lake?sslmode=require".into(),
                Some("p@ss:w".into())
            ))
        );
        assert_eq!(
            split("postgres://loader@db/lake"),
            Some(("postgres://loader@db/lake".into(), None))
        );
        assert_eq!(
            split("postgres://db:5432/lake"),
            Some(("postgres://db:5432/lake".into(), None))
        );
        let back = connect_uri(
            "postgresql://loader@db.internal:5432/lake?sslmode=require",
            Some(&Secret::new("p@ss:w/é")),
        );
        assert_eq!(
            back,
            "postgresql://loader:p%40ss%3Aw%2F%C3%A9@db.internal:5432/lake?sslmode=require"
        );
        assert_eq!(
            split(&back).unwrap().1.as_deref(),
            Some("p@ss:w/é"),
            "encoding and decoding are inverse"
        );
    }

    #[test]
    fn sqlite_files_are_made_if_missing_and_other_databases_are_refused() {
        assert_eq!(
            split("sqlite:///var/lib/catalog.db"),
            Some(("sqlite:///var/lib/catalog.db".into(), None))
        );
        assert_eq!(
            connect_uri("sqlite:///var/lib/catalog.db", None),
            "sqlite:///var/lib/catalog.db?mode=rwc"
        );
        assert_eq!(
            connect_uri("sqlite:///c.db?mode=ro", None),
            "sqlite:///c.db?mode=ro"
        );
        assert_eq!(split("sqlite://"), None);
        assert_eq!(split("mysql://u:p@h/db"), None);
        assert_eq!(split("https://catalog.example.com"), None);
        assert_eq!(split("postgresql://u:p@/db"), None);
    }

    fn settings(uri: &str, warehouse: Option<&str>) -> TableSettings {
        TableSettings {
            catalog: super::super::CatalogKind::Sql,
            uri: uri.into(),
            warehouse: warehouse.map(str::to_owned),
            namespace: vec!["raw".into()],
            credential: None,
            properties: Default::default(),
            commit_interval: Duration::from_secs(60),
            partition_spec: Default::default(),
            replace: false,
        }
    }

    #[test]
    fn settings_are_checked_and_never_echo_the_password() {
        let checked = check(settings("postgresql://u:hunter2@h/db", Some("s3://b/w/"))).unwrap();
        assert_eq!(checked.uri, "postgresql://u@h/db");
        assert_eq!(checked.credential.unwrap().expose(), "hunter2");
        assert_eq!(checked.warehouse.as_deref(), Some("s3://b/w"));
        let mut twice = settings("postgresql://u:hunter2@h/db", Some("s3://b"));
        twice.credential = Some(Secret::new("other"));
        let e = check(twice).unwrap_err();
        assert!(e.contains("twice") && !e.contains("hunter2"), "{e}");
        let e = check(settings("postgresql://u:hunter2@h/db", Some("bucket/w"))).unwrap_err();
        assert!(
            e.contains("iceberg_warehouse") && !e.contains("hunter2"),
            "{e}"
        );
        let e = check(settings("mysql://u:hunter2@h/db", Some("s3://b"))).unwrap_err();
        assert!(
            e.contains("iceberg_catalog_uri") && !e.contains("hunter2"),
            "{e}"
        );
        let mut sqlite = settings("sqlite:///c.db", Some("s3://b"));
        sqlite.credential = Some(Secret::new("pw"));
        assert!(
            check(sqlite)
                .unwrap_err()
                .contains("SQLite file takes none")
        );
        let mut pool = settings("sqlite:///c.db", Some("s3://b"));
        pool.properties
            .insert("pool.max-connections".into(), "many".into());
        assert!(check(pool).unwrap_err().contains("pool.max-connections"));
    }
}
