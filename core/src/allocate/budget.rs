//! Budget caps as the controller sees them: would this fleet push the period's
//! projected spend past the cap, and what the cap's action does about it.
//! Money is integer micro-units of the account currency, never floats.

/// What a cap does when a scale-up would pass it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CapAction {
    /// Scale as wanted; the customer is told.
    Notify,
    /// Scale up only as far as the cap allows.
    Reduce,
    /// Refuse scale-ups that would pass the cap.
    Block,
}

/// The period's money, for one workload's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Budget {
    pub cap_micros: i64,
    /// Projected spend of the period with the fleet as it is now commanded.
    pub projected_micros: i64,
    /// Price of one instance for the rest of the period.
    pub instance_rest_micros: i64,
    pub action: CapAction,
}

/// What the cap did to a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetOutcome {
    /// Over the cap, scaled anyway (action notify).
    Notified,
    /// Scale-up cut to what the cap allows.
    Reduced,
    /// Scale-up refused.
    Blocked,
}

impl Budget {
    /// Projected spend if the fleet moves from `before` to `after` instances.
    pub fn projected_with(&self, before: u32, after: u32) -> i64 {
        let delta = i64::from(after) - i64::from(before);
        self.projected_micros
            .saturating_add(delta.saturating_mul(self.instance_rest_micros))
    }

    /// The fleet allowed and what the cap did. Scale-downs are never stopped.
    pub fn apply(&self, before: u32, after: u32) -> (u32, Option<BudgetOutcome>) {
        if after <= before || self.projected_with(before, after) <= self.cap_micros {
            return (after, None);
        }
        match self.action {
            CapAction::Notify => (after, Some(BudgetOutcome::Notified)),
            CapAction::Block => (before, Some(BudgetOutcome::Blocked)),
            CapAction::Reduce => {
                let room = self.cap_micros.saturating_sub(self.projected_micros);
                let extra = if self.instance_rest_micros <= 0 || room <= 0 {
                    0
                } else {
                    room / self.instance_rest_micros
                };
                let allowed = i64::from(before)
                    .saturating_add(extra)
                    .min(i64::from(after));
                (allowed as u32, Some(BudgetOutcome::Reduced))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(action: CapAction) -> Budget {
        Budget {
            cap_micros: 1_000,
            projected_micros: 700,
            instance_rest_micros: 100,
            action,
        }
    }

    #[test]
    fn under_the_cap_nothing_changes() {
        assert_eq!(budget(CapAction::Block).apply(5, 8), (8, None));
    }

    #[test]
    fn each_action_over_the_cap() {
        assert_eq!(
            budget(CapAction::Notify).apply(5, 10),
            (10, Some(BudgetOutcome::Notified))
        );
        assert_eq!(
            budget(CapAction::Reduce).apply(5, 10),
            (8, Some(BudgetOutcome::Reduced))
        );
        assert_eq!(
            budget(CapAction::Block).apply(5, 10),
            (5, Some(BudgetOutcome::Blocked))
        );
    }

    #[test]
    fn scale_downs_pass_even_over_the_cap() {
        let b = Budget {
            projected_micros: 5_000,
            ..budget(CapAction::Block)
        };
        assert_eq!(b.apply(10, 4), (4, None));
    }
}
