//! The bank's balances read model, shared by `examples/bank.rs` and `tests/bank.rs`.

use std::collections::BTreeMap;

use evtstore::{BoxError, EventMeta, Handles};

use crate::domain::{Account, AccountEvent, Customer, CustomerEvent};

/// Each account's balance, and each registered customer's total over their accounts.
#[derive(Debug, Default)]
pub(crate) struct Balances {
    pub(crate) accounts: BTreeMap<String, u64>,
    pub(crate) customers: BTreeMap<String, u64>,
    /// The customer of each account.
    owners: BTreeMap<String, String>,
}

impl Handles<Customer> for Balances {
    async fn handle(&mut self, event: &CustomerEvent, meta: &EventMeta) -> Result<(), BoxError> {
        if let CustomerEvent::Registered { .. } = event {
            self.customers.insert(meta.aggregate_id.to_string(), 0);
        }
        Ok(())
    }
}

impl Handles<Account> for Balances {
    async fn handle(&mut self, event: &AccountEvent, meta: &EventMeta) -> Result<(), BoxError> {
        let account_id = &meta.aggregate_id.to_string();
        let (added, taken) = match event {
            AccountEvent::Opened { customer_id } => {
                self.owners.insert(account_id.clone(), customer_id.clone());
                (0, 0)
            }
            AccountEvent::Deposited { amount } => (*amount, 0),
            AccountEvent::Withdrawn { amount } => (0, *amount),
        };
        let customer_id = self
            .owners
            .get(account_id)
            .ok_or("an account before it opened")?;
        let change = |balance: &mut u64| *balance = *balance + added - taken;
        change(self.accounts.entry(account_id.clone()).or_default());
        change(self.customers.entry(customer_id.clone()).or_default());
        Ok(())
    }
}
