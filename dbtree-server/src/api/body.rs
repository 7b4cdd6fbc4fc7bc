//! `JsonBody<T>`: a JSON request body documented with `T`'s schema but parsed with serde, so
//! that every error names the exact field (`resources.cpu`, `email`) — poem-openapi's own JSON
//! payload reports only the type it was parsing.

use std::ops::Deref;

use poem::{Request, RequestBody, Result};
use poem_openapi::error::ParseRequestPayloadError;
use poem_openapi::payload::{ParsePayload, Payload};
use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::Type;
use serde::de::DeserializeOwned;

use super::problem::{IntoProblem, ProblemError};

/// A JSON request body.
#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub T);

impl<T> Deref for JsonBody<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: Type> Payload for JsonBody<T> {
    const CONTENT_TYPE: &'static str = "application/json; charset=utf-8";

    fn check_content_type(content_type: &str) -> bool {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        essence == "application/json"
            || (essence.starts_with("application/") && essence.ends_with("+json"))
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: DeserializeOwned + Send> ParsePayload for JsonBody<T> {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> Result<Self> {
        let data = match <Vec<u8> as poem::FromRequest>::from_request(request, body).await {
            Ok(data) => data,
            Err(e) => {
                return Err(match crate::limits::body::exceeded(&e) {
                    Some(limit) => ProblemError(limit.problem()).into(),
                    None => e,
                });
            }
        };
        if data.iter().all(u8::is_ascii_whitespace) {
            return Err(ParseRequestPayloadError {
                reason: "the body must be a JSON object".into(),
            }
            .into());
        }
        let mut deserializer = serde_json::Deserializer::from_slice(&data);
        serde_path_to_error::deserialize(&mut deserializer)
            .map(JsonBody)
            .map_err(|e| {
                let path = e.path().to_string();
                let reason = if e.inner().is_syntax() || e.inner().is_eof() {
                    format!("field `body`: malformed JSON: {}", e.inner())
                } else if path.is_empty() || path == "." {
                    format!("{}", e.inner())
                } else {
                    format!("field `{path}`: {}", e.inner())
                };
                ParseRequestPayloadError { reason }.into()
            })
    }
}

poem_openapi::impl_apirequest_for_payload!(JsonBody<T>, T: DeserializeOwned + Type + Send);

/// For `#[serde(default, deserialize_with = "not_null")]` on an optional field: absent is
/// `None`, a value is `Some`, and an explicit `null` is refused (the schema marks such fields
/// optional, not nullable), with the field named by the caller's 400.
pub(crate) fn not_null<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    match <Option<T> as serde::Deserialize>::deserialize(deserializer)? {
        Some(value) => Ok(Some(value)),
        None => Err(serde::de::Error::custom(
            "null is not allowed here: leave the field out instead",
        )),
    }
}
