//! Org policies the gateway enforces on every request: an ordered list of
//! rules, each a condition on what the request's model is (registered or
//! not, risk tier, validation status, catalog lifecycle, provider, name) and
//! an action. The first rule whose condition holds decides; when none holds,
//! the request is allowed.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::catalog::Lifecycle;
use crate::limits::pattern_matches;
use crate::model::{RiskTier, ValidationStatus};
use crate::ValidationError;

pub const RULES_MAX: usize = 100;
pub const RULE_NAME_MAX: usize = 100;
pub const LIST_MAX: usize = 100;

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PolicyAction {
    /// Refuse the request (403 naming the rule).
    Block,
    /// Let it through without looking at later rules (an exception to a
    /// broader block further down).
    Allow,
}

/// Every condition present must hold (and); an empty condition always holds.
/// Lists hold when the model's value is one of them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyCondition {
    /// Whether the model is in the org's inventory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered: Option<bool>,
    /// Unregistered models count as `tier_4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk_tier: Option<Vec<RiskTier>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk_tier_not: Option<Vec<RiskTier>>,
    /// An unregistered model has no validation status: it matches no
    /// `validation_status` list and every `validation_status_not` list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_status: Option<Vec<ValidationStatus>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_status_not: Option<Vec<ValidationStatus>>,
    /// The catalog's lifecycle of the model; a model the catalog does not
    /// know matches no lifecycle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Vec<Lifecycle>>,
    /// Gateway provider slugs of the upstream (`openai`, `vllm`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<Vec<String>>,
    /// Names of the requested or the upstream model; a trailing `*`
    /// matches any suffix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyRule {
    /// Unique within the policy; named in the refusal.
    pub name: String,
    #[serde(rename = "if", default)]
    pub condition: PolicyCondition,
    #[serde(rename = "then")]
    pub action: PolicyAction,
}

/// What a request's model is, as the policy sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelFacts<'a> {
    /// The name the client sent.
    pub requested: &'a str,
    /// The model id the upstream knows it by.
    pub upstream_model: &'a str,
    pub provider: &'a str,
    /// The inventory entry the model matched, if any.
    pub registered: Option<Registered>,
    pub lifecycle: Option<Lifecycle>,
}

/// The governance facts of a registered model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registered {
    pub risk_tier: RiskTier,
    pub validation_status: ValidationStatus,
}

impl ModelFacts<'_> {
    pub fn risk_tier(&self) -> RiskTier {
        self.registered.map_or(RiskTier::Tier4, |r| r.risk_tier)
    }

    fn validation_status(&self) -> Option<ValidationStatus> {
        self.registered.map(|r| r.validation_status)
    }
}

impl PolicyCondition {
    pub fn holds(&self, m: &ModelFacts<'_>) -> bool {
        if let Some(r) = self.registered {
            if r != m.registered.is_some() {
                return false;
            }
        }
        let tier = m.risk_tier();
        if self.risk_tier.as_ref().is_some_and(|l| !l.contains(&tier)) {
            return false;
        }
        if self
            .risk_tier_not
            .as_ref()
            .is_some_and(|l| l.contains(&tier))
        {
            return false;
        }
        let status = m.validation_status();
        if let Some(l) = &self.validation_status {
            if !status.is_some_and(|s| l.contains(&s)) {
                return false;
            }
        }
        if let Some(l) = &self.validation_status_not {
            if status.is_some_and(|s| l.contains(&s)) {
                return false;
            }
        }
        if let Some(l) = &self.lifecycle {
            if !m.lifecycle.is_some_and(|s| l.contains(&s)) {
                return false;
            }
        }
        if self
            .provider
            .as_ref()
            .is_some_and(|l| !l.iter().any(|p| p == m.provider))
        {
            return false;
        }
        if let Some(l) = &self.model {
            if !l
                .iter()
                .any(|p| pattern_matches(p, m.requested) || pattern_matches(p, m.upstream_model))
            {
                return false;
            }
        }
        true
    }

    /// Why the rule matched, for the refusal's message.
    pub fn describe(m: &ModelFacts<'_>) -> String {
        let registered = match m.registered {
            Some(r) => format!(
                "registered, {}, {}",
                r.risk_tier.as_str(),
                r.validation_status.as_str()
            ),
            None => "not registered (counted as tier_4)".to_owned(),
        };
        match m.lifecycle {
            Some(l) => format!("{registered}, {}", l.as_str()),
            None => registered,
        }
    }
}

/// The first rule whose condition holds, if any; `None` allows.
pub fn evaluate<'r>(rules: &'r [PolicyRule], m: &ModelFacts<'_>) -> Option<&'r PolicyRule> {
    rules.iter().find(|r| r.condition.holds(m))
}

/// The rule that blocks `m`: the first matching rule when it blocks.
pub fn blocking_rule<'r>(rules: &'r [PolicyRule], m: &ModelFacts<'_>) -> Option<&'r PolicyRule> {
    evaluate(rules, m).filter(|r| r.action == PolicyAction::Block)
}

/// Checks a whole policy: bounded, names present and unique, lists bounded
/// and non-empty, patterns well formed.
pub fn validate(rules: Vec<PolicyRule>) -> Result<Vec<PolicyRule>, ValidationError> {
    if rules.len() > RULES_MAX {
        return Err(ValidationError::new(
            "rules",
            format!("at most {RULES_MAX} rules"),
        ));
    }
    let mut out = Vec::with_capacity(rules.len());
    let mut names: Vec<String> = Vec::new();
    for (i, mut rule) in rules.into_iter().enumerate() {
        let field = |f: &str| format!("rules[{i}].{f}");
        rule.name = crate::error::required_text(&field("name"), &rule.name, RULE_NAME_MAX)?;
        if names.contains(&rule.name) {
            return Err(ValidationError::new(
                field("name"),
                format!("the name {:?} is used by an earlier rule", rule.name),
            ));
        }
        names.push(rule.name.clone());
        let c = &rule.condition;
        let lists: [(&str, Option<usize>); 8] = [
            ("risk_tier", c.risk_tier.as_ref().map(Vec::len)),
            ("risk_tier_not", c.risk_tier_not.as_ref().map(Vec::len)),
            (
                "validation_status",
                c.validation_status.as_ref().map(Vec::len),
            ),
            (
                "validation_status_not",
                c.validation_status_not.as_ref().map(Vec::len),
            ),
            ("lifecycle", c.lifecycle.as_ref().map(Vec::len)),
            ("provider", c.provider.as_ref().map(Vec::len)),
            ("model", c.model.as_ref().map(Vec::len)),
            ("registered", None),
        ];
        for (name, len) in lists {
            match len {
                Some(0) => {
                    return Err(ValidationError::new(
                        field(&format!("if.{name}")),
                        "must not be empty (leave it out to match any value)",
                    ))
                }
                Some(n) if n > LIST_MAX => {
                    return Err(ValidationError::new(
                        field(&format!("if.{name}")),
                        format!("at most {LIST_MAX} values"),
                    ))
                }
                _ => {}
            }
        }
        for (list, name) in [(&c.provider, "provider"), (&c.model, "model")] {
            for (j, v) in list.iter().flatten().enumerate() {
                let f = field(&format!("if.{name}[{j}]"));
                crate::error::required_text(&f, v, 200)?;
                if v.strip_suffix('*').unwrap_or(v).contains('*') {
                    return Err(ValidationError::new(
                        f,
                        "`*` is allowed only at the end of a pattern",
                    ));
                }
            }
        }
        out.push(rule);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules() -> Vec<PolicyRule> {
        serde_json::from_value(json!([
            {"name": "registered-only", "if": {"registered": false}, "then": "block"},
            {"name": "validated-high-risk", "if": {"risk_tier": ["tier_1", "tier_2"],
                "validation_status_not": ["validated"]}, "then": "block"},
            {"name": "no-retired", "if": {"lifecycle": ["deprecated", "sunset"]}, "then": "block"}
        ]))
        .expect("the issue's example policy parses")
    }

    fn facts<'a>(
        registered: Option<(RiskTier, ValidationStatus)>,
        lifecycle: Option<Lifecycle>,
    ) -> ModelFacts<'a> {
        ModelFacts {
            requested: "chat-default",
            upstream_model: "gpt-4o",
            provider: "openai",
            registered: registered.map(|(risk_tier, validation_status)| Registered {
                risk_tier,
                validation_status,
            }),
            lifecycle,
        }
    }

    /// (registered as (tier, status), catalog lifecycle, the rule that blocks)
    type Case = (
        Option<(RiskTier, ValidationStatus)>,
        Option<Lifecycle>,
        Option<&'static str>,
    );

    #[test]
    fn the_first_matching_rule_decides_and_no_match_allows() {
        use Lifecycle::{Active, Sunset};
        use RiskTier::*;
        use ValidationStatus::*;
        let rules = rules();
        // (registered, lifecycle, the rule that blocks)
        let table: [Case; 9] = [
            (None, None, Some("registered-only")),
            (None, Some(Lifecycle::Deprecated), Some("registered-only")),
            (Some((Tier1, Draft)), None, Some("validated-high-risk")),
            (
                Some((Tier2, PendingValidation)),
                Some(Active),
                Some("validated-high-risk"),
            ),
            (Some((Tier2, Validated)), Some(Active), None),
            (Some((Tier2, Validated)), Some(Sunset), Some("no-retired")),
            (Some((Tier3, Draft)), None, None),
            (
                Some((Tier4, Draft)),
                Some(Lifecycle::Deprecated),
                Some("no-retired"),
            ),
            (Some((Tier3, Validated)), None, None),
        ];
        for (registered, lifecycle, expect) in table {
            let m = facts(registered, lifecycle);
            assert_eq!(
                blocking_rule(&rules, &m).map(|r| r.name.as_str()),
                expect,
                "{registered:?} {lifecycle:?}"
            );
        }
    }

    #[test]
    fn an_allow_rule_is_an_exception_to_later_blocks() {
        let rules: Vec<PolicyRule> = serde_json::from_value(json!([
            {"name": "local-ok", "if": {"provider": ["vllm", "llamacpp"]}, "then": "allow"},
            {"name": "everything-else", "then": "block"}
        ]))
        .expect("parses");
        let mut m = facts(None, None);
        assert_eq!(
            blocking_rule(&rules, &m).map(|r| r.name.as_str()),
            Some("everything-else")
        );
        m.provider = "vllm";
        assert_eq!(
            evaluate(&rules, &m).map(|r| r.name.as_str()),
            Some("local-ok")
        );
        assert_eq!(blocking_rule(&rules, &m), None);
    }

    #[test]
    fn unregistered_models_count_as_tier_4_without_a_validation_status() {
        let m = facts(None, None);
        let cond = |v: serde_json::Value| -> PolicyCondition {
            serde_json::from_value(v).expect("condition")
        };
        assert!(cond(json!({"risk_tier": ["tier_4"]})).holds(&m));
        assert!(!cond(json!({"risk_tier_not": ["tier_4"]})).holds(&m));
        assert!(!cond(json!({"validation_status": ["draft"]})).holds(&m));
        assert!(cond(json!({"validation_status_not": ["validated"]})).holds(&m));
        assert!(
            !cond(json!({"lifecycle": ["active"]})).holds(&m),
            "unknown lifecycle matches none"
        );
        assert!(cond(json!({})).holds(&m));
    }

    #[test]
    fn model_patterns_match_the_requested_or_the_upstream_name() {
        let m = facts(None, None);
        let cond = |v: serde_json::Value| -> PolicyCondition {
            serde_json::from_value(v).expect("condition")
        };
        assert!(cond(json!({"model": ["chat-*"]})).holds(&m));
        assert!(cond(json!({"model": ["gpt-4o"]})).holds(&m));
        assert!(!cond(json!({"model": ["claude*"]})).holds(&m));
        assert!(cond(json!({"provider": ["openai"], "model": ["gpt-*"]})).holds(&m));
        assert!(!cond(json!({"provider": ["anthropic"], "model": ["gpt-*"]})).holds(&m));
    }

    #[test]
    fn validation_refuses_what_would_be_ambiguous() {
        let field = |v: serde_json::Value| {
            let rules: Vec<PolicyRule> = serde_json::from_value(v).expect("parses");
            validate(rules).expect_err("refused").field
        };
        assert_eq!(
            field(json!([{"name": "a", "then": "block"}, {"name": "a", "then": "allow"}])),
            "rules[1].name"
        );
        assert_eq!(
            field(json!([{"name": " ", "then": "block"}])),
            "rules[0].name"
        );
        assert_eq!(
            field(json!([{"name": "a", "if": {"risk_tier": []}, "then": "block"}])),
            "rules[0].if.risk_tier"
        );
        assert_eq!(
            field(json!([{"name": "a", "if": {"model": ["a*b"]}, "then": "block"}])),
            "rules[0].if.model[0]"
        );
        let many: Vec<serde_json::Value> = (0..=RULES_MAX)
            .map(|i| json!({"name": format!("r{i}"), "then": "block"}))
            .collect();
        assert_eq!(field(json!(many)), "rules");
        assert!(validate(rules()).is_ok());
        let unknown: Result<Vec<PolicyRule>, _> = serde_json::from_value(
            json!([{"name": "a", "if": {"tier": ["tier_1"]}, "then": "block"}]),
        );
        assert!(
            unknown.is_err(),
            "unknown conditions are refused, not ignored"
        );
    }
}
