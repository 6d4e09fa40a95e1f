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
}

impl AuditAction {
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
        }
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
