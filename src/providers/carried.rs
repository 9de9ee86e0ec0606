//! What events of each canonical type carry, as the platforms' documented examples show:
//! the subject references and the amount present in every example of the type. A rule that
//! reads any other reference may meet an event without it (`check` warns, see
//! `rules::optional`). Kept in step with the fixtures by a test
//! (`the_fields_each_type_carries_match_the_fixtures`), which prints the table when they differ.

/// `(canonical type, fields every documented example of it carries)`; fields are `subject.<ref>`
/// and `amount`. A type not listed is not documented by an example: nothing is known of it.
pub const CARRIED: &[(&str, &[&str])] = &[
    (
        "account.amount_updated",
        &["amount", "subject.account", "subject.user"],
    ),
    ("account.meta_changed", &["subject.account"]),
    ("account.meta_set", &["subject.account", "subject.user"]),
    (
        "account.meta_set_failed",
        &["subject.account", "subject.user"],
    ),
    ("batch.completed", &["subject.organization"]),
    ("call.inbound_answered", &["subject.user"]),
    ("call.inbound_finished", &["subject.user"]),
    ("call.outbound_answered", &["subject.user"]),
    ("call.outbound_finished", &["subject.user"]),
    (
        "call.resolution_received",
        &["subject.account", "subject.user"],
    ),
    ("case.created", &["subject.case", "subject.organization"]),
    ("case.updated", &["subject.case", "subject.organization"]),
    ("claim.amount_updated", &["amount", "subject.claim"]),
    (
        "claim.created",
        &["amount", "subject.account", "subject.claim", "subject.user"],
    ),
    (
        "claim.custom_trigger_executed",
        &["subject.account", "subject.claim"],
    ),
    (
        "claim.external_status_changed",
        &["subject.claim", "subject.user"],
    ),
    (
        "claim.meta_updated",
        &["subject.account", "subject.claim", "subject.user"],
    ),
    (
        "claim.resolved",
        &["subject.account", "subject.claim", "subject.user"],
    ),
    (
        "customer.debt_status_changed",
        &["amount", "subject.customer"],
    ),
    (
        "debtor.update_failed",
        &["subject.account", "subject.debtor", "subject.user"],
    ),
    (
        "debtor.updated",
        &["subject.account", "subject.debtor", "subject.user"],
    ),
    (
        "email.delivered",
        &["subject.account", "subject.claim", "subject.user"],
    ),
    (
        "email.delivery_failed",
        &["subject.account", "subject.claim", "subject.user"],
    ),
    (
        "email.delivery_interrupted",
        &["subject.account", "subject.claim", "subject.user"],
    ),
    (
        "email.opened",
        &["subject.account", "subject.claim", "subject.user"],
    ),
    (
        "email.processing_failed",
        &["subject.account", "subject.claim", "subject.user"],
    ),
    (
        "email.queued",
        &["subject.account", "subject.claim", "subject.user"],
    ),
    (
        "email.resolution_received",
        &["subject.account", "subject.user"],
    ),
    (
        "email.unsubscribe_requested",
        &["subject.account", "subject.claim", "subject.user"],
    ),
    (
        "instalment_plan.cancelled",
        &["amount", "subject.account", "subject.debtor"],
    ),
    (
        "instalment_plan.created",
        &["amount", "subject.account", "subject.debtor"],
    ),
    (
        "instalment_plan.deleted",
        &["amount", "subject.account", "subject.debtor"],
    ),
    (
        "instalment_plan.disabled",
        &["amount", "subject.account", "subject.debtor"],
    ),
    (
        "instalment_plan.enabled",
        &["amount", "subject.account", "subject.debtor"],
    ),
    (
        "instalment_plan.invalidated",
        &["amount", "subject.account", "subject.debtor"],
    ),
    (
        "instalment_plan.resolved",
        &["amount", "subject.account", "subject.debtor"],
    ),
    (
        "instalment_plan.updated",
        &["amount", "subject.account", "subject.debtor"],
    ),
    (
        "invoice.approved",
        &[
            "amount",
            "subject.customer",
            "subject.invoice",
            "subject.organization",
        ],
    ),
    (
        "invoice.declined",
        &["amount", "subject.customer", "subject.invoice"],
    ),
    ("invoice.deconciled", &["amount", "subject.invoice"]),
    (
        "invoice.paid",
        &["amount", "subject.customer", "subject.invoice"],
    ),
    ("invoice.reconciled", &["amount", "subject.invoice"]),
    (
        "landing_page.generated",
        &["subject.account", "subject.claim", "subject.user"],
    ),
    (
        "landing_page.instalment_confirmed",
        &["subject.claim", "subject.user"],
    ),
    (
        "landing_page.instalment_selected",
        &["subject.claim", "subject.user"],
    ),
    (
        "landing_page.language_changed",
        &["subject.claim", "subject.user"],
    ),
    (
        "landing_page.pay_later_canceled",
        &["subject.claim", "subject.user"],
    ),
    (
        "landing_page.pay_later_selected",
        &["subject.claim", "subject.user"],
    ),
    (
        "landing_page.payment_failed",
        &["subject.claim", "subject.user"],
    ),
    (
        "landing_page.payment_init_failed",
        &["subject.claim", "subject.user"],
    ),
    (
        "landing_page.payment_init_succeeded",
        &["subject.claim", "subject.user"],
    ),
    (
        "landing_page.payment_interrupted",
        &["subject.claim", "subject.user"],
    ),
    (
        "landing_page.payment_succeeded",
        &["subject.claim", "subject.user"],
    ),
    (
        "landing_page.verification_failed",
        &["subject.account", "subject.claim", "subject.user"],
    ),
    (
        "landing_page.verification_succeeded",
        &["subject.account", "subject.claim", "subject.user"],
    ),
    (
        "ledger_entry.add_failed",
        &["subject.account", "subject.user"],
    ),
    ("ledger_entry.added", &["subject.account", "subject.user"]),
    ("ledger_entry.due_date_update_failed", &["subject.account"]),
    ("letter.generated", &["subject.claim", "subject.user"]),
    (
        "letter.processing_failed",
        &["subject.claim", "subject.user"],
    ),
    (
        "message.resolution_received",
        &["subject.account", "subject.claim", "subject.user"],
    ),
    (
        "multi_claim_payment.canceled",
        &["amount", "subject.account"],
    ),
    (
        "multi_claim_payment.declined",
        &["amount", "subject.account"],
    ),
    (
        "multi_claim_payment.disputed",
        &["amount", "subject.account"],
    ),
    (
        "multi_claim_payment.processing",
        &["amount", "subject.account"],
    ),
    (
        "multi_claim_payment.settled",
        &["amount", "subject.account"],
    ),
    (
        "note.created",
        &["subject.account", "subject.claim", "subject.user"],
    ),
    (
        "note.deleted",
        &["subject.account", "subject.claim", "subject.user"],
    ),
    (
        "payment.completed",
        &[
            "subject.account",
            "subject.payment",
            "subject.payment_request",
        ],
    ),
    (
        "payment.created",
        &[
            "subject.account",
            "subject.payment",
            "subject.payment_request",
        ],
    ),
    (
        "payment.failed",
        &[
            "subject.account",
            "subject.payment",
            "subject.payment_request",
        ],
    ),
    (
        "payment.pending",
        &[
            "subject.account",
            "subject.payment",
            "subject.payment_request",
        ],
    ),
    (
        "payment.processing",
        &["amount", "subject.claim", "subject.user"],
    ),
    (
        "payment.received",
        &[
            "subject.account",
            "subject.payment",
            "subject.payment_request",
        ],
    ),
    (
        "payment.reversed",
        &[
            "subject.account",
            "subject.payment",
            "subject.payment_request",
        ],
    ),
    (
        "payment.settled",
        &["amount", "subject.claim", "subject.user"],
    ),
    (
        "payment_request.cancelled",
        &["subject.account", "subject.payment_request"],
    ),
    (
        "payment_request.created",
        &["subject.account", "subject.payment_request"],
    ),
    (
        "payment_request.paid",
        &["subject.account", "subject.payment_request"],
    ),
    (
        "payment_request.partially_paid",
        &["subject.account", "subject.payment_request"],
    ),
    (
        "payout.failed",
        &[
            "subject.account",
            "subject.payment",
            "subject.payment_request",
        ],
    ),
    (
        "payout.initiated",
        &[
            "subject.account",
            "subject.payment",
            "subject.payment_request",
        ],
    ),
    (
        "payout.paid",
        &[
            "subject.account",
            "subject.payment",
            "subject.payment_request",
        ],
    ),
    (
        "payout.pending_approval",
        &[
            "subject.account",
            "subject.payment",
            "subject.payment_request",
        ],
    ),
    ("promise_to_pay.created", &["amount", "subject.claim"]),
    ("promise_to_pay.expired", &["subject.claim"]),
    (
        "promise_to_pay.invalidated",
        &["subject.account", "subject.claim"],
    ),
    ("promise_to_pay.resolved", &["subject.claim"]),
    (
        "reminder.account_summary_sent",
        &["amount", "subject.customer"],
    ),
    (
        "reminder.invoice_sent",
        &["amount", "subject.customer", "subject.invoice"],
    ),
    (
        "settlement.created",
        &["subject.invoice", "subject.organization"],
    ),
    ("sms.delivered", &["subject.claim", "subject.user"]),
    ("sms.delivery_failed", &["subject.claim", "subject.user"]),
    (
        "sms.delivery_temporarily_failed",
        &["subject.account", "subject.claim", "subject.user"],
    ),
    (
        "sms.processing_failed",
        &["subject.account", "subject.claim", "subject.user"],
    ),
    (
        "sms.queued",
        &["subject.account", "subject.claim", "subject.user"],
    ),
    (
        "sms.resolution_received",
        &["subject.account", "subject.user"],
    ),
    (
        "strategy.assigned",
        &["subject.account", "subject.claim", "subject.user"],
    ),
    (
        "strategy.finished",
        &["subject.account", "subject.claim", "subject.user"],
    ),
    ("strategy.paused", &["subject.claim", "subject.user"]),
    ("strategy.resumed", &["subject.claim", "subject.user"]),
    (
        "strategy.stopped",
        &["subject.account", "subject.claim", "subject.user"],
    ),
];

/// The fields every documented example of `kind` carries, if the type is documented.
pub fn carried(kind: &str) -> Option<&'static [&'static str]> {
    CARRIED
        .binary_search_by(|(k, _)| k.cmp(&kind))
        .ok()
        .map(|i| CARRIED[i].1)
}
