use std::fmt;

/// Security-relevant actions written to the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    SignedUp,
    LoggedIn,
    LoginFailed,
    LoggedOut,
    PasswordChanged,
    ApiKeyCreated,
    ApiKeyRevoked,
    MemberInvited,
    InvitationRevoked,
    InvitationAccepted,
    RoleChanged,
    MemberRemoved,
    OrganizationUpdated,
    AllocationSettingsChanged,
    AllocationSuggested,
    PriceRuleCreated,
    PriceRuleEnded,
    BudgetCapChanged,
    WebhookEndpointCreated,
    WebhookEndpointEnabled,
    WebhookSecretRotated,
    WebhookEndpointDeleted,
    WebhookDeliveryReplayed,
    OtherSessionsEnded,
}

impl AuditAction {
    pub const ALL: [AuditAction; 24] = [
        Self::SignedUp,
        Self::LoggedIn,
        Self::LoginFailed,
        Self::LoggedOut,
        Self::PasswordChanged,
        Self::ApiKeyCreated,
        Self::ApiKeyRevoked,
        Self::MemberInvited,
        Self::InvitationRevoked,
        Self::InvitationAccepted,
        Self::RoleChanged,
        Self::MemberRemoved,
        Self::OrganizationUpdated,
        Self::AllocationSettingsChanged,
        Self::AllocationSuggested,
        Self::PriceRuleCreated,
        Self::PriceRuleEnded,
        Self::BudgetCapChanged,
        Self::WebhookEndpointCreated,
        Self::WebhookEndpointEnabled,
        Self::WebhookSecretRotated,
        Self::WebhookEndpointDeleted,
        Self::WebhookDeliveryReplayed,
        Self::OtherSessionsEnded,
    ];

    /// The action a stored or requested name stands for.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SignedUp => "signed_up",
            Self::LoggedIn => "logged_in",
            Self::LoginFailed => "login_failed",
            Self::LoggedOut => "logged_out",
            Self::PasswordChanged => "password_changed",
            Self::ApiKeyCreated => "api_key_created",
            Self::ApiKeyRevoked => "api_key_revoked",
            Self::MemberInvited => "member_invited",
            Self::InvitationRevoked => "invitation_revoked",
            Self::InvitationAccepted => "invitation_accepted",
            Self::RoleChanged => "role_changed",
            Self::MemberRemoved => "member_removed",
            Self::OrganizationUpdated => "organization_updated",
            Self::AllocationSettingsChanged => "allocation_settings_changed",
            Self::AllocationSuggested => "allocation_suggested",
            Self::PriceRuleCreated => "price_rule_created",
            Self::PriceRuleEnded => "price_rule_ended",
            Self::BudgetCapChanged => "budget_cap_changed",
            Self::WebhookEndpointCreated => "webhook_endpoint_created",
            Self::WebhookEndpointEnabled => "webhook_endpoint_enabled",
            Self::WebhookSecretRotated => "webhook_secret_rotated",
            Self::WebhookEndpointDeleted => "webhook_endpoint_deleted",
            Self::WebhookDeliveryReplayed => "webhook_delivery_replayed",
            Self::OtherSessionsEnded => "other_sessions_ended",
        }
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::AuditAction;

    #[test]
    fn every_action_reads_back_from_its_name_and_names_are_distinct() {
        let mut names = std::collections::HashSet::new();
        for a in AuditAction::ALL {
            assert_eq!(AuditAction::parse(a.as_str()), Some(a));
            assert!(names.insert(a.as_str()), "{a} twice");
        }
        assert_eq!(AuditAction::parse("logged-in"), None);
        assert_eq!(AuditAction::parse(""), None);
    }
}
