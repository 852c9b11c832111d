//! The REST catalog (`iceberg_catalog_type: rest`): the library's client for tables and
//! the append commits of its transactions, and this module's own commit request for the
//! commits the library cannot build (overwrite's replacement snapshot).
//!
//! The commit request is the REST spec's: `POST /v1/{prefix}/namespaces/{ns}/tables/{t}`
//! with the commit's requirements and updates, authenticated as the library's client
//! is (the `token` property, or the OAuth2 client-credentials exchange of
//! `iceberg_credential`), at the prefix the catalog's `/v1/config` names. 409 is another
//! writer's commit first: the retryable conflict.
//!
//! Owns: those requests. Must not touch: what a commit holds (`overwrite`), the
//! credential's text in any message (only `catalog_error` words errors).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use iceberg::{
    Catalog, CatalogBuilder, Error, ErrorKind, TableIdent, TableRequirement, TableUpdate,
};
use iceberg_catalog_rest::RestCatalogBuilder;
use reqwest::{RequestBuilder, StatusCode};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::OnceCell;

use super::commit::Committer;
use super::storage::S3Tables;
use super::{TableSettings, catalog_error};
use crate::secret::Secret;

/// The catalog at `settings.uri`, and its committer for overwrite's snapshots.
pub async fn rest_catalog(
    settings: &TableSettings,
    storage: Arc<S3Tables>,
) -> crate::error::Result<(Arc<dyn Catalog>, Arc<dyn Committer>)> {
    let properties = properties(settings);
    let catalog = RestCatalogBuilder::default()
        .with_storage_factory(storage)
        .load("target-s3", properties.clone())
        .await
        .map_err(|e| catalog_error(settings, "connecting", &"", e))?;
    let committer = RestCommitter {
        uri: settings.uri.trim_end_matches('/').to_owned(),
        properties: properties.into_iter().collect(),
        credential: settings.credential.clone(),
        http: reqwest::Client::new(),
        session: OnceCell::new(),
    };
    Ok((Arc::new(catalog), Arc::new(committer)))
}

/// The library client's properties: the passed-through ones, then the settings.
fn properties(settings: &TableSettings) -> HashMap<String, String> {
    let mut properties: HashMap<String, String> = settings.properties.clone().into_iter().collect();
    properties.insert("uri".into(), settings.uri.clone());
    if let Some(warehouse) = &settings.warehouse {
        properties.insert("warehouse".into(), warehouse.clone());
    }
    if let Some(credential) = &settings.credential {
        properties.insert("credential".into(), credential.expose().to_owned());
    }
    properties
}

struct RestCommitter {
    uri: String,
    properties: BTreeMap<String, String>,
    credential: Option<Secret>,
    http: reqwest::Client,
    /// The bearer token and the catalog's URL prefix, learnt at the first commit.
    session: OnceCell<Session>,
}

struct Session {
    token: Option<Secret>,
    /// `{uri}/v1` or `{uri}/v1/{prefix}`.
    base: String,
}

/// `GET /v1/config`'s answer: properties under the client's (`defaults`) and over them
/// (`overrides`).
#[derive(Deserialize, Default)]
struct CatalogConfig {
    #[serde(default)]
    defaults: HashMap<String, String>,
    #[serde(default)]
    overrides: HashMap<String, String>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
}

#[async_trait]
impl Committer for RestCommitter {
    async fn commit(
        &self,
        table: &TableIdent,
        requirements: Vec<TableRequirement>,
        updates: Vec<TableUpdate>,
    ) -> iceberg::Result<()> {
        let session = self.session.get_or_try_init(|| self.open()).await?;
        let namespace = table.namespace().to_url_string().replace('\u{1f}', "%1F");
        let url = format!(
            "{}/namespaces/{namespace}/tables/{}",
            session.base,
            table.name()
        );
        let body = json!({"identifier": table, "requirements": requirements, "updates": updates});
        let request = self.with_headers(self.http.post(url), session.token.as_ref());
        let answer = request.json(&body).send().await.map_err(unreachable)?;
        match answer.status() {
            status if status.is_success() => Ok(()),
            StatusCode::NOT_FOUND => Err(Error::new(
                ErrorKind::TableNotFound,
                format!("table {table} is not in the catalog (any more)"),
            )),
            StatusCode::CONFLICT => Err(Error::new(
                ErrorKind::CatalogCommitConflicts,
                format!("table {table} was committed to by another writer first"),
            )
            .with_retryable(true)),
            status => Err(refused("commit", status, answer.text().await.ok())),
        }
    }
}

impl RestCommitter {
    /// The token (given, or exchanged for the client credentials), then the prefix
    /// the catalog's configuration names.
    async fn open(&self) -> iceberg::Result<Session> {
        let token = match (self.properties.get("token"), &self.credential) {
            (Some(token), _) => Some(Secret::new(token.clone())),
            (None, Some(credential)) => Some(self.exchange(credential).await?),
            (None, None) => None,
        };
        let mut request = self.http.get(format!("{}/v1/config", self.uri));
        if let Some(warehouse) = self.properties.get("warehouse") {
            request = request.query(&[("warehouse", warehouse)]);
        }
        let answer = self
            .with_headers(request, token.as_ref())
            .send()
            .await
            .map_err(unreachable)?;
        if !answer.status().is_success() {
            let status = answer.status();
            return Err(refused("configuration", status, answer.text().await.ok()));
        }
        let config: CatalogConfig = answer.json().await.map_err(unreachable)?;
        let prefix = config
            .overrides
            .get("prefix")
            .or_else(|| self.properties.get("prefix"))
            .or_else(|| config.defaults.get("prefix"));
        let uri = config.overrides.get("uri").unwrap_or(&self.uri);
        let base = match prefix {
            Some(prefix) => format!("{}/v1/{prefix}", uri.trim_end_matches('/')),
            None => format!("{}/v1", uri.trim_end_matches('/')),
        };
        Ok(Session { token, base })
    }

    /// The OAuth2 client-credentials exchange, as the library's client makes it.
    async fn exchange(&self, credential: &Secret) -> iceberg::Result<Secret> {
        let endpoint = self
            .properties
            .get("oauth2-server-uri")
            .cloned()
            .unwrap_or_else(|| format!("{}/v1/oauth/tokens", self.uri));
        let (id, secret) = match credential.expose().split_once(':') {
            Some((id, secret)) => (Some(id), secret),
            None => (None, credential.expose()),
        };
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_secret", secret),
        ];
        form.extend(id.map(|id| ("client_id", id)));
        let scope = self
            .properties
            .get("scope")
            .map_or("catalog", String::as_str);
        form.push(("scope", scope));
        for key in ["audience", "resource"] {
            form.extend(self.properties.get(key).map(|v| (key, v.as_str())));
        }
        let answer = self
            .http
            .post(endpoint)
            .form(&form)
            .send()
            .await
            .map_err(unreachable)?;
        if !answer.status().is_success() {
            let status = answer.status();
            return Err(refused("token exchange", status, None));
        }
        let token: TokenAnswer = answer.json().await.map_err(unreachable)?;
        Ok(Secret::new(token.access_token))
    }

    /// The bearer token and the `header.*` properties, as the library sends them.
    fn with_headers(&self, mut request: RequestBuilder, token: Option<&Secret>) -> RequestBuilder {
        for (name, value) in &self.properties {
            if let Some(name) = name.strip_prefix("header.") {
                request = request.header(name, value);
            }
        }
        match token {
            Some(token) => request.bearer_auth(token.expose()),
            None => request,
        }
    }
}

fn unreachable(e: reqwest::Error) -> Error {
    // Without the URL: it may carry a token in a query.
    Error::new(ErrorKind::Unexpected, e.without_url().to_string())
}

/// A refusal with the catalog's own message (the REST spec's `error.message`).
fn refused(what: &str, status: StatusCode, body: Option<String>) -> Error {
    let message = body
        .as_deref()
        .and_then(|b| serde_json::from_str::<serde_json::Value>(b).ok())
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .or(body)
        .unwrap_or_default();
    Error::new(
        ErrorKind::Unexpected,
        format!("{what} refused ({status}): {message}"),
    )
}
