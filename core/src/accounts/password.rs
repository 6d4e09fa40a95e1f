use thiserror::Error;

pub const MIN_PASSWORD_LEN: usize = 12;
const MAX_PASSWORD_LEN: usize = 256;

/// The rule a rejected password broke; the message is shown to the user as is.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PasswordRule {
    #[error("password must be at least 12 characters long")]
    TooShort,
    #[error("password must be at most 256 characters long")]
    TooLong,
    #[error("password must not be a single repeated character")]
    Repetitive,
    #[error("password must not contain your e-mail address or its name part")]
    ContainsEmail,
    #[error("password is one of the most common passwords")]
    Common,
}

/// A few of the most used passwords that are long enough to pass the length rule.
const COMMON: &[&str] = &[
    "password1234",
    "123456789012",
    "qwertyuiopas",
    "passwordpassword",
    "iloveyou1234",
    "administrator",
    "letmein12345",
    "welcome12345",
    "qwerty123456",
    "changeme1234",
];

/// Length-first policy (NIST SP 800-63B): long enough, not trivially guessable.
pub fn check_password(password: &str, email: &str) -> Result<(), PasswordRule> {
    let len = password.chars().count();
    if len < MIN_PASSWORD_LEN {
        return Err(PasswordRule::TooShort);
    }
    if len > MAX_PASSWORD_LEN {
        return Err(PasswordRule::TooLong);
    }
    let mut chars = password.chars();
    let first = chars.next();
    if chars.all(|c| Some(c) == first) {
        return Err(PasswordRule::Repetitive);
    }
    let lower = password.to_lowercase();
    let email = email.trim().to_lowercase();
    let name = email.split('@').next().unwrap_or_default();
    if (!email.is_empty() && lower.contains(&email)) || (name.len() >= 4 && lower.contains(name)) {
        return Err(PasswordRule::ContainsEmail);
    }
    if COMMON.contains(&lower.as_str()) {
        return Err(PasswordRule::Common);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_is_named() {
        let email = "grace@example.com";
        assert_eq!(check_password("short", email), Err(PasswordRule::TooShort));
        assert_eq!(
            check_password(&"x".repeat(300), email),
            Err(PasswordRule::TooLong)
        );
        assert_eq!(
            check_password("aaaaaaaaaaaaaaa", email),
            Err(PasswordRule::Repetitive)
        );
        assert_eq!(
            check_password("my-GRACE-password", email),
            Err(PasswordRule::ContainsEmail)
        );
        assert_eq!(
            check_password("Password1234", email),
            Err(PasswordRule::Common)
        );
        assert_eq!(check_password("correct horse battery", email), Ok(()));
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        assert_eq!(
            check_password("ééééééééééé", "a@b.co"),
            Err(PasswordRule::TooShort)
        );
    }
}
