//! Shared access signatures: the account SAS corekit signs per request from an account key,
//! and the service SAS of presigned URLs.

use super::*;

/// Query-string authentication added to every request.
pub(super) enum QueryAuth {
    Key {
        account: String,
        key: Secret,
        cached: Mutex<Option<(Instant, String)>>,
    },
    Fixed(Secret),
}

impl QueryAuth {
    pub(super) fn query(&self) -> Result<String> {
        match self {
            QueryAuth::Fixed(token) => Ok(token.expose().to_owned()),
            QueryAuth::Key {
                account,
                key,
                cached,
            } => {
                let mut cached = cached.lock().unwrap_or_else(|p| p.into_inner());
                if let Some((at, q)) = cached.as_ref()
                    && at.elapsed() < ACCOUNT_SAS_LIFETIME / 2
                {
                    return Ok(q.clone());
                }
                let q = account_sas(account, key, SystemTime::now() + ACCOUNT_SAS_LIFETIME)?;
                *cached = Some((Instant::now(), q.clone()));
                Ok(q)
            }
        }
    }
}

/// Appends the SAS to each request's query string.
pub(super) struct SasPolicy(pub(super) Arc<QueryAuth>);

impl std::fmt::Debug for SasPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SasPolicy")
    }
}

#[async_trait::async_trait]
impl azure_core::http::policies::Policy for SasPolicy {
    async fn send(
        &self,
        ctx: &azure_core::http::Context,
        request: &mut azure_core::http::Request,
        next: &[Arc<dyn azure_core::http::policies::Policy>],
    ) -> azure_core::http::policies::PolicyResult {
        let query = self.0.query().map_err(|e| {
            azure_core::Error::with_message(azure_core::error::ErrorKind::Credential, e.to_string())
        })?;
        append_query(request.url_mut(), &query);
        match next.split_first() {
            Some((policy, rest)) => policy.send(ctx, request, rest).await,
            None => Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Other,
                "no transport policy after the SAS policy",
            )),
        }
    }
}

pub(super) fn append_query(url: &mut Url, query: &str) {
    let combined = match url.query() {
        Some(q) if !q.is_empty() => format!("{q}&{query}"),
        _ => query.to_owned(),
    };
    url.set_query(Some(&combined));
}

/// `2026-11-30T12:00:00Z`.
pub(super) fn iso8601(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let t = OffsetDateTime::from_unix_timestamp(secs as i64).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

pub(super) fn sign(key: &Secret, string_to_sign: &str) -> Result<String> {
    let key = azure_core::credentials::Secret::new(key.expose().to_owned());
    azure_core::hmac::hmac_sha256(string_to_sign, &key)
        .map_err(|e| Error::config(format!("Azure account key is not base64: {e}")))
}

pub(super) fn encode_query_value(v: &str) -> String {
    crate::storage::percent_encode(v, false)
}

/// An account SAS for the blob service: containers and objects, read/write/delete/list/add/
/// create, until `expiry`.
pub(super) fn account_sas(account: &str, key: &Secret, expiry: SystemTime) -> Result<String> {
    let (sp, ss, srt, se) = ("rwdlac", "b", "sco", iso8601(expiry));
    let to_sign = format!("{account}\n{sp}\n{ss}\n{srt}\n\n{se}\n\n\n{SAS_VERSION}\n\n");
    let sig = sign(key, &to_sign)?;
    Ok(format!(
        "sv={SAS_VERSION}&ss={ss}&srt={srt}&sp={sp}&se={}&sig={}",
        encode_query_value(&se),
        encode_query_value(&sig)
    ))
}

/// A service SAS for one blob.
pub(super) fn blob_sas(
    account: &str,
    container: &str,
    blob: &str,
    permissions: &str,
    key: &Secret,
    expiry: SystemTime,
) -> Result<String> {
    let se = iso8601(expiry);
    let resource = format!("/blob/{account}/{container}/{blob}");
    // sp, st, se, resource, si, sip, spr, sv, sr, snapshot, ses, rscc, rscd, rsce, rscl, rsct.
    let to_sign =
        format!("{permissions}\n\n{se}\n{resource}\n\n\n\n{SAS_VERSION}\nb\n\n\n\n\n\n\n");
    let sig = sign(key, &to_sign)?;
    Ok(format!(
        "sv={SAS_VERSION}&sr=b&sp={permissions}&se={}&sig={}",
        encode_query_value(&se),
        encode_query_value(&sig)
    ))
}
