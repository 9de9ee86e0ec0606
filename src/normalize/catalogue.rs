//! The event catalogue: every documented provider type and the canonical type it maps to.
//! The one place that knows the names; `signalbox events` prints it and `docs/events.md`
//! documents it (a test keeps them in step).

use std::collections::HashMap;
use std::sync::LazyLock;

/// One documented provider event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub source: &'static str,
    /// The provider's type without its version (`event.promiseToPay.expired`, not `....v1`).
    pub source_type: &'static str,
    /// The canonical type rules match on.
    pub kind: &'static str,
    pub meaning: &'static str,
}

const fn e(
    source: &'static str,
    source_type: &'static str,
    kind: &'static str,
    meaning: &'static str,
) -> Entry {
    Entry {
        source,
        source_type,
        kind,
        meaning,
    }
}

pub static CATALOGUE: &[Entry] = &[
    // Receeve: account
    e(
        "receeve",
        "event.accountAmountTotalFees.updated",
        "account.amount_updated",
        "the account's total amount and fees were updated",
    ),
    e(
        "receeve",
        "event.accountDebtor.updated",
        "debtor.updated",
        "an account's debtor was updated",
    ),
    e(
        "receeve",
        "event.accountDebtorUpdate.failed",
        "debtor.update_failed",
        "updating an account's debtor failed",
    ),
    e(
        "receeve",
        "event.accountInvoiceLedgerEntriesDueDateUpdate.failed",
        "ledger_entry.due_date_update_failed",
        "updating the due date of ledger entries failed",
    ),
    e(
        "receeve",
        "event.accountLedgerEntries.added",
        "ledger_entry.added",
        "ledger entries were added to an account",
    ),
    e(
        "receeve",
        "event.accountLedgerEntriesAdding.failed",
        "ledger_entry.add_failed",
        "adding ledger entries to an account failed",
    ),
    e(
        "receeve",
        "event.accountMeta.set",
        "account.meta_set",
        "meta fields of an account were set",
    ),
    e(
        "receeve",
        "event.accountMetaSet.failed",
        "account.meta_set_failed",
        "setting meta fields of an account failed",
    ),
    e(
        "receeve",
        "webhook.accountMeta.changed",
        "account.meta_changed",
        "meta fields of an account were added, changed or deleted",
    ),
    // Receeve: claim
    e(
        "receeve",
        "event.claim.created",
        "claim.created",
        "a claim was created",
    ),
    e(
        "receeve",
        "event.claim.resolved",
        "claim.resolved",
        "a claim was resolved",
    ),
    e(
        "receeve",
        "event.claimDebtPayment.processing",
        "payment.processing",
        "a payment on a claim was accepted by the payment provider and is being processed",
    ),
    e(
        "receeve",
        "event.claimDebtPayment.settled",
        "payment.settled",
        "a payment on a claim was settled",
    ),
    e(
        "receeve",
        "event.multiClaimDebtPayment.settled",
        "multi_claim_payment.settled",
        "a payment covering several claims was settled",
    ),
    e(
        "receeve",
        "event.multiClaimDebtPayment.processing",
        "multi_claim_payment.processing",
        "a payment covering several claims is being processed",
    ),
    e(
        "receeve",
        "event.multiClaimDebtPayment.canceled",
        "multi_claim_payment.canceled",
        "a payment covering several claims was canceled",
    ),
    e(
        "receeve",
        "event.multiClaimDebtPayment.declined",
        "multi_claim_payment.declined",
        "a payment covering several claims was declined",
    ),
    e(
        "receeve",
        "event.multiClaimDebtPayment.disputed",
        "multi_claim_payment.disputed",
        "a payment covering several claims was disputed",
    ),
    e(
        "receeve",
        "event.claimMeta.updated",
        "claim.meta_updated",
        "meta fields of a claim were updated",
    ),
    e(
        "receeve",
        "event.customClaimTrigger.executed",
        "claim.custom_trigger_executed",
        "a custom trigger ran on a claim",
    ),
    e(
        "receeve",
        "event.partnerClaimExternalStatus.changed",
        "claim.external_status_changed",
        "a partner changed a claim's external status",
    ),
    e(
        "receeve",
        "event.claimTotalAmount.updated",
        "claim.amount_updated",
        "a claim's total amount was updated",
    ),
    // Receeve: communication
    e(
        "receeve",
        "event.debtorCallCommunicationResolution.received",
        "call.resolution_received",
        "the outcome of a call with the debtor was recorded",
    ),
    e(
        "receeve",
        "event.debtorEmail.delivered",
        "email.delivered",
        "an email to the debtor was delivered",
    ),
    e(
        "receeve",
        "event.debtorEmail.opened",
        "email.opened",
        "the debtor opened an email",
    ),
    e(
        "receeve",
        "event.debtorEmail.queued",
        "email.queued",
        "an email to the debtor was queued",
    ),
    e(
        "receeve",
        "event.debtorEmailCommunicationResolution.received",
        "email.resolution_received",
        "the outcome of an email exchange with the debtor was recorded",
    ),
    e(
        "receeve",
        "event.debtorEmailDelivery.failed",
        "email.delivery_failed",
        "an email to the debtor could not be delivered",
    ),
    e(
        "receeve",
        "event.debtorEmailDelivery.interrupted",
        "email.delivery_interrupted",
        "delivery of an email to the debtor was interrupted",
    ),
    e(
        "receeve",
        "event.debtorEmailProcessing.failed",
        "email.processing_failed",
        "an email to the debtor could not be processed",
    ),
    e(
        "receeve",
        "event.debtorEmailUnsubscribe.requested",
        "email.unsubscribe_requested",
        "the debtor asked to receive no more emails",
    ),
    e(
        "receeve",
        "event.debtorLetter.generated",
        "letter.generated",
        "a letter to the debtor was generated",
    ),
    e(
        "receeve",
        "event.debtorLetterProcessing.failed",
        "letter.processing_failed",
        "a letter to the debtor could not be processed",
    ),
    e(
        "receeve",
        "event.debtorMessageCommunicationResolution.received",
        "message.resolution_received",
        "the outcome of a message exchange with the debtor was recorded",
    ),
    e(
        "receeve",
        "event.debtorSMS.delivered",
        "sms.delivered",
        "an SMS to the debtor was delivered",
    ),
    e(
        "receeve",
        "event.debtorSMS.queued",
        "sms.queued",
        "an SMS to the debtor was queued",
    ),
    e(
        "receeve",
        "event.debtorSMSCommunicationResolution.received",
        "sms.resolution_received",
        "the outcome of an SMS exchange with the debtor was recorded",
    ),
    e(
        "receeve",
        "event.debtorSMSDelivery.failed",
        "sms.delivery_failed",
        "an SMS to the debtor could not be delivered",
    ),
    e(
        "receeve",
        "event.debtorSMSDelivery.temporaryFailed",
        "sms.delivery_temporarily_failed",
        "an SMS to the debtor failed for now and may be retried",
    ),
    e(
        "receeve",
        "event.debtorSMSProcessing.failed",
        "sms.processing_failed",
        "an SMS to the debtor could not be processed",
    ),
    e(
        "receeve",
        "event.inboundCall.answered",
        "call.inbound_answered",
        "a call from the debtor was answered",
    ),
    e(
        "receeve",
        "event.inboundCall.finished",
        "call.inbound_finished",
        "a call from the debtor ended",
    ),
    e(
        "receeve",
        "event.outboundCall.answered",
        "call.outbound_answered",
        "the debtor answered a call",
    ),
    e(
        "receeve",
        "event.outboundCall.finished",
        "call.outbound_finished",
        "a call to the debtor ended",
    ),
    // Receeve: promise to pay
    e(
        "receeve",
        "event.promiseToPay.created",
        "promise_to_pay.created",
        "the debtor promised to pay",
    ),
    e(
        "receeve",
        "event.promiseToPay.expired",
        "promise_to_pay.expired",
        "a promise to pay passed its due date unpaid",
    ),
    e(
        "receeve",
        "event.promiseToPay.invalidated",
        "promise_to_pay.invalidated",
        "a promise to pay was invalidated",
    ),
    e(
        "receeve",
        "event.promiseToPay.resolved",
        "promise_to_pay.resolved",
        "a promise to pay was kept",
    ),
    // Receeve: instalment plan
    e(
        "receeve",
        "event.instalmentPlan.created",
        "instalment_plan.created",
        "an instalment plan was created",
    ),
    e(
        "receeve",
        "event.instalmentPlan.cancelled",
        "instalment_plan.cancelled",
        "an instalment plan was cancelled by an agent or the system",
    ),
    e(
        "receeve",
        "event.instalmentPlan.deleted",
        "instalment_plan.deleted",
        "an instalment plan was deleted with its account or claim",
    ),
    e(
        "receeve",
        "event.instalmentPlan.disabled",
        "instalment_plan.disabled",
        "an instalment plan's processing was suspended or stopped",
    ),
    e(
        "receeve",
        "event.instalmentPlan.enabled",
        "instalment_plan.enabled",
        "an instalment plan is active and ready for processing",
    ),
    e(
        "receeve",
        "event.instalmentPlan.invalidated",
        "instalment_plan.invalidated",
        "an instalment plan ended without the agreed amount covered",
    ),
    e(
        "receeve",
        "event.instalmentPlan.resolved",
        "instalment_plan.resolved",
        "an instalment plan was completed",
    ),
    e(
        "receeve",
        "event.instalmentPlan.updated",
        "instalment_plan.updated",
        "an instalment plan changed (payment, chargeback, instalments)",
    ),
    // Receeve: debtor landing page (two doc headings differ from their messageType: the
    // messageType, which deliveries carry, is the source type; the heading is an alias)
    e(
        "receeve",
        "event.landingPageClaimContent.generated",
        "landing_page.generated",
        "the debtor's payment landing page was generated (doc heading: event.landingPageFullContent.generated)",
    ),
    e(
        "receeve",
        "event.landingPageVerification.failed",
        "landing_page.verification_failed",
        "the debtor failed verification on the landing page (doc heading: event.landingPageGetVerificationFields.failed)",
    ),
    e(
        "receeve",
        "event.landingPageInstalment.confirmed",
        "landing_page.instalment_confirmed",
        "the debtor confirmed an instalment plan on the landing page",
    ),
    e(
        "receeve",
        "event.landingPageInstalment.selected",
        "landing_page.instalment_selected",
        "the debtor selected an instalment plan on the landing page",
    ),
    e(
        "receeve",
        "event.landingPageLanguage.changed",
        "landing_page.language_changed",
        "the debtor changed the landing page's language",
    ),
    e(
        "receeve",
        "event.landingPagePayLater.canceled",
        "landing_page.pay_later_canceled",
        "the debtor canceled paying later on the landing page",
    ),
    e(
        "receeve",
        "event.landingPagePayLater.selected",
        "landing_page.pay_later_selected",
        "the debtor chose to pay later on the landing page",
    ),
    e(
        "receeve",
        "event.landingPagePayment.failed",
        "landing_page.payment_failed",
        "a payment on the landing page failed",
    ),
    e(
        "receeve",
        "event.landingPagePayment.interrupted",
        "landing_page.payment_interrupted",
        "a payment on the landing page was interrupted",
    ),
    e(
        "receeve",
        "event.landingPagePayment.succeeded",
        "landing_page.payment_succeeded",
        "a payment on the landing page succeeded",
    ),
    e(
        "receeve",
        "event.landingPagePaymentInit.failed",
        "landing_page.payment_init_failed",
        "starting a payment on the landing page failed",
    ),
    e(
        "receeve",
        "event.landingPagePaymentInit.succeeded",
        "landing_page.payment_init_succeeded",
        "a payment on the landing page was started",
    ),
    e(
        "receeve",
        "event.landingPageVerification.succeeded",
        "landing_page.verification_succeeded",
        "the debtor passed verification on the landing page",
    ),
    // Receeve: backoffice diary and strategy
    e(
        "receeve",
        "event.note.deleted",
        "note.deleted",
        "an agent removed a note on a claim",
    ),
    e(
        "receeve",
        "event.note.created",
        "note.created",
        "an agent added a note on a claim",
    ),
    e(
        "receeve",
        "event.strategy.assigned",
        "strategy.assigned",
        "the initial collection strategy was assigned to a claim",
    ),
    e(
        "receeve",
        "event.strategy.finished",
        "strategy.finished",
        "a claim's collection strategy ran to its end",
    ),
    e(
        "receeve",
        "event.strategy.paused",
        "strategy.paused",
        "a claim's collection strategy was paused",
    ),
    e(
        "receeve",
        "event.strategy.resumed",
        "strategy.resumed",
        "a claim's collection strategy was resumed",
    ),
    e(
        "receeve",
        "event.strategy.stopped",
        "strategy.stopped",
        "a claim's collection strategy was stopped",
    ),
    // Hubpay
    e(
        "hubpay",
        "collection.payment_request.created",
        "payment_request.created",
        "a payment request was created",
    ),
    e(
        "hubpay",
        "collection.payment_request.paid",
        "payment_request.paid",
        "a payment request was paid in full",
    ),
    e(
        "hubpay",
        "collection.payment_request.part_paid",
        "payment_request.partially_paid",
        "a payment request was paid in part",
    ),
    e(
        "hubpay",
        "collection.payment_request.cancelled",
        "payment_request.cancelled",
        "a payment request was cancelled",
    ),
    e(
        "hubpay",
        "collection.payment_request.payment.created",
        "payment.created",
        "a payment on a payment request was created",
    ),
    e(
        "hubpay",
        "collection.payment_request.payment.pending",
        "payment.pending",
        "a payment on a payment request is pending",
    ),
    e(
        "hubpay",
        "collection.payment_request.payment.received",
        "payment.received",
        "a payment on a payment request was received",
    ),
    e(
        "hubpay",
        "collection.payment_request.payment.completed",
        "payment.completed",
        "a payment on a payment request completed",
    ),
    e(
        "hubpay",
        "collection.payment_request.payment.failed",
        "payment.failed",
        "a payment on a payment request failed",
    ),
    e(
        "hubpay",
        "collection.payment_request.payment.reversed",
        "payment.reversed",
        "a payment on a payment request was reversed",
    ),
    e(
        "hubpay",
        "collection.payment_request.payment.payout.pending_approval",
        "payout.pending_approval",
        "a payout of a payment awaits approval",
    ),
    e(
        "hubpay",
        "collection.payment_request.payment.payout.initiated",
        "payout.initiated",
        "a payout of a payment was initiated",
    ),
    e(
        "hubpay",
        "collection.payment_request.payment.payout.paid",
        "payout.paid",
        "a payout of a payment was paid",
    ),
    e(
        "hubpay",
        "collection.payment_request.payment.payout.failed",
        "payout.failed",
        "a payout of a payment failed",
    ),
    // Amili
    e(
        "amili",
        "BATCH_COMPLETED",
        "batch.completed",
        "a batch finished (status SUCCESS, PARTIAL or FAILED)",
    ),
    e(
        "amili",
        "SETTLEMENT_CREATED",
        "settlement.created",
        "a settlement was created for an invoice",
    ),
    e(
        "amili",
        "CASE",
        "case.created",
        "a collection case was created",
    ),
    e(
        "amili",
        "CASE_UPDATED",
        "case.updated",
        "a collection case changed (the fields changed are listed)",
    ),
    // Bemmbo (no type in the body: recognised from its shape, or from the endpoint path)
    e(
        "bemmbo",
        "collections_reminder_by_account",
        "reminder.account_summary_sent",
        "a summary reminder of an account's invoices was issued",
    ),
    e(
        "bemmbo",
        "collections_reminder_by_invoice",
        "reminder.invoice_sent",
        "a reminder for an invoice issued, about to expire or expired was sent",
    ),
    e(
        "bemmbo",
        "customer_debt_status_changed",
        "customer.debt_status_changed",
        "a customer's debt status changed",
    ),
    e(
        "bemmbo",
        "invoice_deconciled_from_payments",
        "invoice.deconciled",
        "an invoice was unmatched from payments",
    ),
    e(
        "bemmbo",
        "invoice_reconciled_to_payments",
        "invoice.reconciled",
        "an invoice was matched to payments",
    ),
    // B54
    e(
        "b54",
        "invoice.approved",
        "invoice.approved",
        "an invoice was approved for discounting",
    ),
    e(
        "b54",
        "invoice.declined",
        "invoice.declined",
        "an invoice was declined",
    ),
    e(
        "b54",
        "invoice.paid",
        "invoice.paid",
        "a payment was made for an invoice",
    ),
];

/// Doc headings that differ from the type deliveries carry.
const ALIASES: &[(&str, &str, &str)] = &[
    (
        "receeve",
        "event.landingPageFullContent.generated",
        "event.landingPageClaimContent.generated",
    ),
    (
        "receeve",
        "event.landingPageGetVerificationFields.failed",
        "event.landingPageVerification.failed",
    ),
];

static INDEX: LazyLock<HashMap<(&'static str, &'static str), &'static Entry>> =
    LazyLock::new(|| {
        let mut index: HashMap<_, _> = CATALOGUE
            .iter()
            .map(|e| ((e.source, e.source_type), e))
            .collect();
        for (source, alias, target) in ALIASES {
            let entry = index[&(*source, *target)];
            index.insert((*source, *alias), entry);
        }
        index
    });

/// The entry for a provider's type (already stripped of its version), if documented.
pub fn lookup(source: &str, source_type: &str) -> Option<&'static Entry> {
    INDEX.get(&(source, source_type)).copied()
}

/// The sources the catalogue covers, in order of first appearance.
pub fn sources() -> Vec<&'static str> {
    let mut sources: Vec<&str> = Vec::new();
    for entry in CATALOGUE {
        if !sources.contains(&entry.source) {
            sources.push(entry.source);
        }
    }
    sources
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::EventType;

    #[test]
    fn canonical_types_are_valid_and_entries_unique() {
        let mut seen = std::collections::HashSet::new();
        for entry in CATALOGUE {
            EventType::parse(entry.kind).unwrap();
            assert!(
                seen.insert((entry.source, entry.source_type)),
                "{entry:?} twice"
            );
        }
    }

    #[test]
    fn counts_per_provider_match_the_docs() {
        let count = |s| CATALOGUE.iter().filter(|e| e.source == s).count();
        // receeve.txt documents 76 message types (69 with examples, plus 7 instalment plan
        // events sharing the `created` shape).
        assert_eq!(
            [
                count("receeve"),
                count("hubpay"),
                count("amili"),
                count("bemmbo"),
                count("b54")
            ],
            [76, 14, 4, 5, 3]
        );
    }

    #[test]
    fn fixed_names_are_kept() {
        let kinds: std::collections::HashSet<&str> = CATALOGUE.iter().map(|e| e.kind).collect();
        for fixed in [
            "promise_to_pay.created",
            "promise_to_pay.expired",
            "promise_to_pay.invalidated",
            "promise_to_pay.resolved",
            "sms.delivery_failed",
            "email.delivery_failed",
            "invoice.approved",
            "invoice.declined",
            "invoice.paid",
            "strategy.paused",
            "strategy.resumed",
            "strategy.stopped",
            "strategy.finished",
            "claim.created",
            "claim.resolved",
        ] {
            assert!(kinds.contains(fixed), "{fixed}");
        }
    }

    #[test]
    fn doc_headings_are_aliases() {
        assert_eq!(
            lookup("receeve", "event.landingPageFullContent.generated")
                .unwrap()
                .kind,
            "landing_page.generated"
        );
    }
}
