//! `spec.engineConfig`: the few engine settings a user may choose, each checked against an
//! allow-list so that no value can smuggle another directive into a configuration file.

use std::collections::BTreeMap;

use dbtree_adapters::kube::EngineKind;

use super::{SpecError, engine_name};

/// The form a setting's value must have.
#[derive(Clone, Copy, Debug)]
enum Form {
    /// A decimal integer within the bounds.
    Int { min: i64, max: i64 },
    /// One of these words.
    OneOf(&'static [&'static str]),
}

const POSTGRES: &[(&str, Form)] = &[
    ("max_connections", Form::Int { min: 5, max: 200 }),
    (
        "statement_timeout",
        Form::Int {
            min: 0,
            max: 3_600_000,
        },
    ),
    (
        "idle_in_transaction_session_timeout",
        Form::Int {
            min: 0,
            max: 86_400_000,
        },
    ),
    (
        "log_min_duration_statement",
        Form::Int {
            min: -1,
            max: 3_600_000,
        },
    ),
];

const REDIS: &[(&str, Form)] = &[
    (
        "maxmemory-policy",
        Form::OneOf(&[
            "noeviction",
            "allkeys-lru",
            "allkeys-lfu",
            "allkeys-random",
            "volatile-lru",
            "volatile-lfu",
            "volatile-random",
            "volatile-ttl",
        ]),
    ),
    ("appendonly", Form::OneOf(&["yes", "no"])),
    ("appendfsync", Form::OneOf(&["always", "everysec", "no"])),
];

const MONGODB: &[(&str, Form)] = &[(
    "slowOpThresholdMs",
    Form::Int {
        min: 0,
        max: 3_600_000,
    },
)];

/// Settings that passed the allow-list; safe to write into a configuration file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EngineSettings(BTreeMap<String, String>);

impl EngineSettings {
    /// Checks every key and value of `spec.engineConfig` for `engine`.
    ///
    /// # Errors
    /// [`SpecError::UnknownSetting`] for a key the engine does not take,
    /// [`SpecError::BadSettingValue`] for a value of the wrong form or out of range.
    pub fn validate(
        engine: EngineKind,
        config: &BTreeMap<String, String>,
    ) -> Result<Self, SpecError> {
        let allowed = match engine {
            EngineKind::Postgresql => POSTGRES,
            EngineKind::Redis => REDIS,
            EngineKind::Mongodb => MONGODB,
        };
        let mut out = BTreeMap::new();
        for (key, value) in config {
            let Some((_, form)) = allowed.iter().find(|(k, _)| k == key) else {
                return Err(SpecError::UnknownSetting {
                    engine: engine_name(engine),
                    key: key.clone(),
                });
            };
            let bad = |reason: String| SpecError::BadSettingValue {
                key: key.clone(),
                reason,
            };
            match *form {
                Form::Int { min, max } => {
                    let parsed = value
                        .parse::<i64>()
                        .ok()
                        .filter(|_| value.bytes().all(|b| b.is_ascii_digit() || b == b'-'));
                    match parsed {
                        Some(n) if (min..=max).contains(&n) => {}
                        _ => return Err(bad(format!("must be an integer from {min} to {max}"))),
                    }
                }
                Form::OneOf(words) => {
                    if !words.contains(&value.as_str()) {
                        return Err(bad(format!("must be one of {}", words.join(", "))));
                    }
                }
            }
            out.insert(key.clone(), value.clone());
        }
        Ok(Self(out))
    }

    /// The chosen value of `key`, if any.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn config(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn allowed_settings_pass_through() {
        let s = EngineSettings::validate(
            EngineKind::Redis,
            &config(&[("maxmemory-policy", "allkeys-lru"), ("appendonly", "no")]),
        )
        .unwrap();
        assert_eq!(s.get("maxmemory-policy"), Some("allkeys-lru"));
        assert_eq!(s.get("appendonly"), Some("no"));
        assert_eq!(s.get("appendfsync"), None);
        let pg = EngineSettings::validate(
            EngineKind::Postgresql,
            &config(&[
                ("max_connections", "50"),
                ("log_min_duration_statement", "-1"),
            ]),
        )
        .unwrap();
        assert_eq!(pg.get("max_connections"), Some("50"));
    }

    type Case = (
        EngineKind,
        &'static [(&'static str, &'static str)],
        &'static str,
    );

    #[test]
    fn unknown_keys_and_bad_values_are_refused_with_the_field() {
        let cases: &[Case] = &[
            (
                EngineKind::Redis,
                &[("requirepass", "x")],
                "spec.engineConfig.requirepass is not",
            ),
            (
                EngineKind::Mongodb,
                &[("max_connections", "5")],
                "for mongodb",
            ),
            (
                EngineKind::Redis,
                &[("maxmemory-policy", "lru\nrequirepass x")],
                "must be one of",
            ),
            (
                EngineKind::Postgresql,
                &[("max_connections", "1000")],
                "from 5 to 200",
            ),
            (
                EngineKind::Postgresql,
                &[("max_connections", "+50")],
                "integer",
            ),
            (
                EngineKind::Postgresql,
                &[("statement_timeout", "10s")],
                "integer",
            ),
            (
                EngineKind::Mongodb,
                &[("slowOpThresholdMs", "-5")],
                "from 0 to 3600000",
            ),
        ];
        for (engine, pairs, expected) in cases {
            let err = EngineSettings::validate(*engine, &config(pairs)).unwrap_err();
            assert!(err.to_string().contains(expected), "{pairs:?}: {err}");
        }
    }
}
