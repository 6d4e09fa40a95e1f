use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    #[error("{field} is empty")]
    Empty { field: &'static str },
    #[error("{field} is longer than {max} characters")]
    TooLong { field: &'static str, max: usize },
    #[error("{field} may contain only letters, digits and . _ - : / (got {got:?})")]
    Characters { field: &'static str, got: String },
}

/// Identifiers that end up in URLs, labels and queries: short and plain.
pub fn validate_name(field: &'static str, s: &str, max: usize) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError::Empty { field });
    }
    if s.chars().count() > max {
        return Err(NameError::TooLong { field, max });
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '/'))
    {
        return Err(NameError::Characters {
            field,
            got: s.chars().take(40).collect(),
        });
    }
    Ok(())
}

/// Metric names: `cpu`, `memory`, `net_in`, or any custom name.
pub fn validate_metric(s: &str) -> Result<(), NameError> {
    validate_name("metric", s, 100)
}

/// Micro-operation types: `MEMORY_READ`, `CPU_INSTRUCTION`, `NETWORK_SEND`, …
pub fn validate_micro_operation_type(t: &str) -> Result<(), String> {
    if t.is_empty()
        || t.len() > 64
        || !t.starts_with(|c: char| c.is_ascii_uppercase())
        || !t
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(format!(
            "micro_operation_type must be UPPER_SNAKE_CASE, e.g. MEMORY_READ (got {:?})",
            t.chars().take(70).collect::<String>()
        ));
    }
    Ok(())
}

/// A workload: a service, host group or Auto Scaling group, named by the customer.
pub fn validate_workload(s: &str) -> Result<(), NameError> {
    validate_name("workload", s, 200)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_pass_and_others_say_why() {
        assert!(validate_metric("cpu.user_pct").is_ok());
        assert!(validate_workload("eu-west-1/api:blue").is_ok());
        assert_eq!(
            validate_metric(""),
            Err(NameError::Empty { field: "metric" })
        );
        assert!(matches!(
            validate_metric("cpu load"),
            Err(NameError::Characters { .. })
        ));
        assert!(matches!(
            validate_workload(&"w".repeat(201)),
            Err(NameError::TooLong { max: 200, .. })
        ));
    }
}
