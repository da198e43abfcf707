//! The bank's domain, shared by `examples/bank.rs` and `tests/bank.rs`: customers, accounts
//! that only a registered customer who is not blocked may open, and their commands.

use evtstore::{Aggregate, Command, Decision, Domain, EventMeta, Loaded, Rejection};
use serde::{Deserialize, Serialize};

evtstore::domain!(pub(crate) Bank { Customer, Account });

/// What happens to a customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub(crate) enum CustomerEvent {
    Registered { name: String },
    Blocked,
}

/// A customer of the bank.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Customer {
    pub(crate) name: String,
    pub(crate) blocked: bool,
}

impl Aggregate for Customer {
    const STREAM: &'static str = "customers";
    type Event = CustomerEvent;

    fn fold(&mut self, event: &CustomerEvent, _meta: &EventMeta) {
        match event {
            CustomerEvent::Registered { name } => self.name = name.clone(),
            CustomerEvent::Blocked => self.blocked = true,
        }
    }
}

/// What happens to an account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub(crate) enum AccountEvent {
    Opened { customer_id: String },
    Deposited { amount: u64 },
    Withdrawn { amount: u64 },
}

/// An account: its customer and its balance.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Account {
    pub(crate) customer_id: String,
    pub(crate) balance: u64,
}

impl Aggregate for Account {
    const STREAM: &'static str = "accounts";
    type Event = AccountEvent;

    fn fold(&mut self, event: &AccountEvent, _meta: &EventMeta) {
        match event {
            AccountEvent::Opened { customer_id } => self.customer_id = customer_id.clone(),
            AccountEvent::Deposited { amount } => self.balance += amount,
            AccountEvent::Withdrawn { amount } => self.balance -= amount,
        }
    }
}

/// Why the bank refuses a command.
#[derive(Debug, PartialEq, thiserror::Error)]
pub(crate) enum BankError {
    #[error("customer {0} is registered already")]
    CustomerExists(String),
    #[error("no customer {0}")]
    UnknownCustomer(String),
    #[error("customer {0} is blocked")]
    CustomerBlocked(String),
    #[error("the account is open already")]
    AccountExists,
    #[error("no such account")]
    NoAccount,
    #[error("insufficient funds: the balance is {balance}, {requested} requested")]
    InsufficientFunds { balance: u64, requested: u64 },
}

impl Rejection for BankError {}

/// Registers a customer under the command's id.
pub(crate) struct Register {
    pub(crate) name: String,
}

impl Command<Bank> for Register {
    type Aggregate = Customer;
    type Error = BankError;

    async fn handle(self, customer: &Loaded<Customer>, _: &Domain<Bank>) -> Decision<Self, Bank> {
        if customer.version > 0 {
            Err(BankError::CustomerExists(customer.id.to_string()))?;
        }
        Ok(vec![CustomerEvent::Registered { name: self.name }])
    }
}

/// Blocks a customer: they may open no more accounts.
pub(crate) struct Block;

impl Command<Bank> for Block {
    type Aggregate = Customer;
    type Error = BankError;

    async fn handle(self, customer: &Loaded<Customer>, _: &Domain<Bank>) -> Decision<Self, Bank> {
        match (customer.version, customer.state.blocked) {
            (0, _) => Err(BankError::UnknownCustomer(customer.id.to_string()))?,
            (_, true) => Ok(vec![]),
            (_, false) => Ok(vec![CustomerEvent::Blocked]),
        }
    }
}

/// Opens an account for a customer, who must be registered and not blocked.
pub(crate) struct OpenAccount {
    customer_id: String,
}

impl OpenAccount {
    /// Opens an account for customer `customer_id`.
    pub(crate) fn for_customer(customer_id: &str) -> Self {
        let customer_id = customer_id.into();
        OpenAccount { customer_id }
    }
}

impl Command<Bank> for OpenAccount {
    type Aggregate = Account;
    type Error = BankError;

    async fn handle(self, account: &Loaded<Account>, bank: &Domain<Bank>) -> Decision<Self, Bank> {
        if account.version > 0 {
            Err(BankError::AccountExists)?;
        }
        let customer = bank.load::<Customer>(&self.customer_id).await?;
        if customer.version == 0 {
            Err(BankError::UnknownCustomer(self.customer_id.clone()))?;
        }
        if customer.state.blocked {
            Err(BankError::CustomerBlocked(self.customer_id.clone()))?;
        }
        let customer_id = self.customer_id;
        Ok(vec![AccountEvent::Opened { customer_id }])
    }
}

/// Puts money into an open account.
pub(crate) struct Deposit {
    pub(crate) amount: u64,
}

impl Command<Bank> for Deposit {
    type Aggregate = Account;
    type Error = BankError;

    async fn handle(self, account: &Loaded<Account>, _: &Domain<Bank>) -> Decision<Self, Bank> {
        if account.version == 0 {
            Err(BankError::NoAccount)?;
        }
        Ok(vec![AccountEvent::Deposited {
            amount: self.amount,
        }])
    }
}

/// Takes money out of an open account, no more than its balance.
pub(crate) struct Withdraw {
    pub(crate) amount: u64,
}

impl Command<Bank> for Withdraw {
    type Aggregate = Account;
    type Error = BankError;

    async fn handle(self, account: &Loaded<Account>, _: &Domain<Bank>) -> Decision<Self, Bank> {
        let (balance, requested) = (account.state.balance, self.amount);
        if account.version == 0 {
            Err(BankError::NoAccount)?;
        }
        if requested > balance {
            Err(BankError::InsufficientFunds { balance, requested })?;
        }
        Ok(vec![AccountEvent::Withdrawn { amount: requested }])
    }
}
