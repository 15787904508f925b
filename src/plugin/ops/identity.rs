//! Who the plugin records as acting (plugin layer): the user the API server authenticated, asked
//! once per run with a SelfSubjectReview, never the kubeconfig's local name for the user.

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use kube::{Api, api::PostParams};

use super::Session;
use crate::plugin::{PluginError, Result};

/// The most characters the Incident CRD admits in `by`, `author`, `commander` and `reporter`.
pub const MAX_ACTOR: usize = 128;

/// What the plugin needs, said whenever the review cannot be had.
const NEEDS: &str = "kubectl incident records the user the API server authenticated, so it needs \
                     `create` on selfsubjectreviews.authentication.k8s.io (every authenticated \
                     user has it through the system:basic-user ClusterRole)";

impl Session {
    /// The authenticated user's name; the first call of a run asks the API server, later calls
    /// reuse the answer, and read-only commands never call it.
    pub async fn actor(&self) -> Result<&str> {
        self.actor
            .get_or_try_init(|| async {
                let review = Api::<SelfSubjectReview>::all(self.client.clone())
                    .create(&PostParams::default(), &SelfSubjectReview::default())
                    .await
                    .map_err(refusal)?;
                username(&review)
            })
            .await
            .map(String::as_str)
    }
}

/// The user a review names, refused when there is none or the CRDs could not hold it.
fn username(review: &SelfSubjectReview) -> Result<String> {
    let name = review
        .status
        .as_ref()
        .and_then(|s| s.user_info.as_ref())
        .and_then(|u| u.username.as_deref())
        .unwrap_or_default();
    if name.trim().is_empty() {
        return Err(PluginError::Identity(format!(
            "the API server's SelfSubjectReview names no user; {NEEDS}"
        )));
    }
    let length = name.chars().count();
    if length > MAX_ACTOR {
        // A cut name would not be the authenticated user, so admission would refuse it anyway.
        return Err(PluginError::Identity(format!(
            "the API server authenticated you as {name:?}, {length} characters long, but incidents \
             record at most {MAX_ACTOR}; nothing was written"
        )));
    }
    Ok(name.to_owned())
}

/// Why the review failed, naming the permission when it was refused or is not served. By code
/// first: a server that does not serve the API may answer with no Kubernetes reason.
fn refusal(source: kube::Error) -> PluginError {
    match source {
        kube::Error::Api(status) if status.code == 401 => PluginError::Identity(format!(
            "the API server did not authenticate you ({}); {NEEDS}",
            status.message
        )),
        kube::Error::Api(status) if matches!(status.code, 404 | 405) || status.is_not_found() => {
            PluginError::Identity(format!(
                "the API server does not serve SelfSubjectReviews (authentication.k8s.io/v1, \
                 Kubernetes 1.28 and later): {}; {NEEDS}",
                status.message
            ))
        }
        kube::Error::Api(status) => PluginError::Identity(format!(
            "the API server refused the SelfSubjectReview ({}); {NEEDS}",
            status.message
        )),
        source => PluginError::Api {
            what: "cannot ask the API server who you are (SelfSubjectReview)".to_owned(),
            source,
        },
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::authentication::v1::{SelfSubjectReviewStatus, UserInfo};
    use kube::core::Status;

    use super::*;

    fn review(username: Option<&str>) -> SelfSubjectReview {
        SelfSubjectReview {
            status: Some(SelfSubjectReviewStatus {
                user_info: Some(UserInfo {
                    username: username.map(str::to_owned),
                    ..UserInfo::default()
                }),
            }),
            ..SelfSubjectReview::default()
        }
    }

    fn identity(result: Result<String>) -> String {
        match result {
            Err(PluginError::Identity(message)) => message,
            other => panic!("not an identity error: {other:?}"),
        }
    }

    #[test]
    fn the_actor_is_the_authenticated_user_whole() {
        assert_eq!(
            username(&review(Some("ana@example.com"))).unwrap(),
            "ana@example.com"
        );
        let longest = "é".repeat(MAX_ACTOR);
        assert_eq!(username(&review(Some(&longest))).unwrap(), longest);
        let message = identity(username(&review(Some(&"a".repeat(MAX_ACTOR + 1)))));
        assert!(message.contains("129 characters long"), "{message}");
        assert!(message.contains("at most 128"), "{message}");
    }

    #[test]
    fn no_user_is_no_actor() {
        for review in [
            review(None),
            review(Some(" ")),
            SelfSubjectReview::default(),
        ] {
            let message = identity(username(&review));
            assert!(message.contains("names no user"), "{message}");
        }
    }

    #[test]
    fn a_refused_or_missing_review_names_the_permission() {
        for (code, said) in [
            (403, "refused the SelfSubjectReview"),
            (404, "does not serve SelfSubjectReviews"),
            (401, "did not authenticate you"),
        ] {
            let status = Status::failure("nope", "Reason").with_code(code);
            let message = identity(Err(refusal(kube::Error::Api(Box::new(status)))));
            assert!(message.contains(said), "{code}: {message}");
            assert!(
                message.contains("`create` on selfsubjectreviews.authentication.k8s.io"),
                "{code}: {message}"
            );
            assert!(message.contains("nope"), "{code}: {message}");
        }
    }
}
