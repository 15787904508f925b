//! Whether the trust policies are in force (core): the ValidatingAdmissionPolicies the operator
//! was told to expect (`--admission-policies`) each exist and are bound to deny. Without them the
//! names on acknowledgments and approvals are whatever a client wrote (docs/security.md).

use std::collections::BTreeMap;

/// One ValidatingAdmissionPolicyBinding, as far as enforcement goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    pub name: String,
    /// The policy it binds (`spec.policyName`).
    pub policy: String,
    /// `spec.validationActions` (Deny, Warn, Audit).
    pub actions: Vec<String>,
}

/// What is wrong, one line per expected policy that is missing, unbound or bound only to warn or
/// audit; empty when every one is in force.
pub fn problems(expected: &[String], policies: &[String], bindings: &[Binding]) -> Vec<String> {
    let mut bound: BTreeMap<&str, Vec<&Binding>> = BTreeMap::new();
    for binding in bindings {
        bound
            .entry(binding.policy.as_str())
            .or_default()
            .push(binding);
    }
    expected
        .iter()
        .filter_map(|name| {
            if !policies.contains(name) {
                return Some(format!("ValidatingAdmissionPolicy {name} does not exist"));
            }
            let bindings = bound.get(name.as_str()).map_or(&[][..], Vec::as_slice);
            if bindings.is_empty() {
                return Some(format!(
                    "no ValidatingAdmissionPolicyBinding binds ValidatingAdmissionPolicy {name}"
                ));
            }
            let denies = bindings
                .iter()
                .any(|b| b.actions.iter().any(|a| a == "Deny"));
            (!denies).then(|| {
                let names: Vec<&str> = bindings.iter().map(|b| b.name.as_str()).collect();
                format!(
                    "ValidatingAdmissionPolicy {name} only warns or audits: no binding of it denies ({})",
                    names.join(", ")
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(name: &str, policy: &str, actions: &[&str]) -> Binding {
        Binding {
            name: name.into(),
            policy: policy.into(),
            actions: actions.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn every_expected_policy_must_exist_and_be_bound_to_deny() {
        let expected = names(&["io-identity", "io-rights"]);
        let policies = names(&["io-identity", "io-rights", "other"]);
        let good = vec![
            binding("io-identity", "io-identity", &["Deny"]),
            binding("io-rights", "io-rights", &["Audit", "Deny"]),
        ];
        assert!(problems(&expected, &policies, &good).is_empty());
        assert!(problems(&[], &[], &[]).is_empty(), "nothing expected");

        let missing = problems(&expected, &names(&["io-rights"]), &good);
        assert_eq!(
            missing,
            ["ValidatingAdmissionPolicy io-identity does not exist"]
        );
        let unbound = problems(&expected, &policies, &good[1..]);
        assert_eq!(
            unbound,
            ["no ValidatingAdmissionPolicyBinding binds ValidatingAdmissionPolicy io-identity"]
        );
        let warns = vec![
            binding("soft", "io-identity", &["Warn", "Audit"]),
            good[1].clone(),
        ];
        assert_eq!(
            problems(&expected, &policies, &warns),
            [
                "ValidatingAdmissionPolicy io-identity only warns or audits: no binding of it denies (soft)"
            ]
        );
    }
}
