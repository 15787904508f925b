//! Reading the Secrets a Channel names (cluster layer): one key at a time, only where asked, and
//! never echoed: errors name the Secret and key, not the value.

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

use crate::{Error, Result, api::SecretKeyRef};

/// Why a referenced secret value cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Missing {
    /// The Secret does not exist (or the operator may not read it).
    Secret(String),
    /// The Secret has no such key, or its value is empty or not UTF-8.
    Key { secret: String, key: String },
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Missing::Secret(name) => write!(f, "Secret {name} not found or not readable"),
            Missing::Key { secret, key } => {
                write!(f, "Secret {secret} has no usable key {key}")
            }
        }
    }
}

/// The value of `reference` in `namespace`, or why there is none.
pub async fn value(
    client: &Client,
    namespace: &str,
    reference: &SecretKeyRef,
) -> Result<std::result::Result<String, Missing>> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = match secrets.get_opt(&reference.name).await {
        Ok(Some(secret)) => secret,
        Ok(None) => return Ok(Err(Missing::Secret(reference.name.clone()))),
        // Not allowed to read it is, for the channel, the same as not there.
        Err(kube::Error::Api(status)) if status.code == 403 => {
            return Ok(Err(Missing::Secret(reference.name.clone())));
        }
        Err(error) => return Err(Error::Kube(error)),
    };
    let value = secret
        .data
        .as_ref()
        .and_then(|data| data.get(&reference.key))
        .and_then(|bytes| String::from_utf8(bytes.0.clone()).ok())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|data| data.get(&reference.key).cloned())
        })
        .filter(|v| !v.trim().is_empty());
    Ok(value.ok_or_else(|| Missing::Key {
        secret: reference.name.clone(),
        key: reference.key.clone(),
    }))
}
