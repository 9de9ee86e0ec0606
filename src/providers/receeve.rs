//! Receeve: `{"payload": {"details": {"messageType": ...}, "messageId", "timestamp", "user"},
//! "signature"}`. Amounts are integer minor units with a `currency`.

use serde_json::Value;

use super::{Inbound, Platform, ProviderError, Scheme, content_id, invalid};
use crate::normalize::catalogue::{Alias, Entry, e};
use crate::normalize::fields::{
    Normalized, first_text, minor_units, only_text, strip_version_suffix, text, time,
};

/// Receeve: how its deliveries are signed and read, and its part of the event catalogue.
pub static PLATFORM: Platform = Platform {
    name: "receeve",
    scheme: Scheme::PayloadHmac,
    normalize,
    catalogue: CATALOGUE,
    aliases: ALIASES,
    headers: &[],
};

pub fn normalize(body: &Value, _req: &Inbound<'_>) -> Result<Normalized, ProviderError> {
    let payload = body
        .get("payload")
        .filter(|p| p.is_object())
        .ok_or_else(|| invalid("expected a 'payload' object"))?;
    let empty = Value::Object(Default::default());
    let details = payload
        .get("details")
        .filter(|d| d.is_object())
        .unwrap_or(&empty);
    let message_type = text(details, &["messageType"])
        .ok_or_else(|| invalid("payload.details.messageType is missing"))?;
    let plan = details.get("instalmentPlan").unwrap_or(&Value::Null);

    let mut n = Normalized {
        source_event_id: text(payload, &["messageId"]).unwrap_or_else(|| content_id(payload)),
        catalogue_type: Some(strip_version_suffix(&message_type).to_owned()),
        source_type: Some(message_type),
        occurred_at: time(payload, &["timestamp"]),
        data: details.clone(),
        ..Normalized::default()
    };
    let s = &mut n.subject;
    s.account = text(details, &["accountReference"]);
    s.claim = first_text(
        details,
        &[&["claimRef"], &["claimReference"], &["receeveClaimRef"]],
    )
    .or_else(|| only_text(plan, &["scope", "externalClaimReferences"]))
    .or_else(|| single_claim_payment(details));
    s.debtor = first_text(
        details,
        &[&["externalDebtorRef"], &["debtor", "externalDebtorRef"]],
    )
    .or_else(|| only_text(plan, &["scope", "debtorReferences"]));
    s.user = text(payload, &["user", "id"]);

    let currency = text(details, &["currency"])
        .or_else(|| text(plan, &["currency"]))
        .or_else(|| {
            details
                .pointer("/claimPayments/0/currency")
                .and_then(|c| text(c, &[]))
        });
    let amount = ["totalAmount", "amount", "totalPaymentAmount"]
        .iter()
        .find_map(|k| details.get(*k).filter(|v| v.is_number()));
    let amount = amount.or_else(|| plan.get("totalAmount").filter(|v| v.is_number()));
    n.amount = amount.and_then(|a| minor_units(a, currency));
    Ok(n)
}

fn single_claim_payment(details: &Value) -> Option<String> {
    match details.get("claimPayments")?.as_array()?.as_slice() {
        [one] => first_text(one, &[&["claimRef"], &["receeveClaimRef"]]),
        _ => None,
    }
}

/// Receeve's documented types, in the order of its docs.
const CATALOGUE: &[Entry] = &[
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
];

/// Doc headings that differ from the type deliveries carry.
const ALIASES: &[Alias] = &[
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

#[cfg(test)]
mod tests {
    #[test]
    fn catalogue_count_matches_the_docs() {
        // receeve.txt documents 76 message types (69 with examples, plus 7 instalment plan
        // events sharing the `created` shape).
        assert_eq!(super::PLATFORM.catalogue.len(), 76);
    }
}
