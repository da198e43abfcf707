//! The bank of `examples/bank.rs`: its commands given earlier events, and its balances.

#[path = "../examples/bank/balances.rs"]
mod balances;
#[allow(dead_code)] // the example uses the commands these tests do not
#[path = "../examples/bank/domain.rs"]
mod domain;

use balances::Balances;
use domain::AccountEvent::{Deposited, Opened, Withdrawn};
use domain::CustomerEvent::{Blocked, Registered};
use domain::{Account, Bank, BankError, Customer, OpenAccount, Withdraw};
use evtstore::testing::Scenario;

#[tokio::test]
async fn an_account_opens_for_a_registered_customer() {
    let customer_id = String::from("ann");
    Scenario::<Bank>::new()
        .given::<Customer>("ann", [Registered { name: "Ann".into() }])
        .when("acc-1", OpenAccount::for_customer("ann"))
        .then([Opened { customer_id }])
        .await;
}

#[tokio::test]
async fn an_account_does_not_open_for_an_unknown_customer() {
    Scenario::<Bank>::new()
        .when("acc-1", OpenAccount::for_customer("carol"))
        .then_rejected(BankError::UnknownCustomer("carol".into()))
        .await;
}

#[tokio::test]
async fn a_withdrawal_above_the_balance_is_refused() {
    let (customer_id, balance, requested) = ("ann".into(), 100, 150);
    let history = [Opened { customer_id }, Deposited { amount: balance }];
    Scenario::<Bank>::new()
        .given::<Account>("acc-1", history)
        .when("acc-1", Withdraw { amount: requested })
        .then_rejected(BankError::InsufficientFunds { balance, requested })
        .await;
}

#[tokio::test]
async fn balances_add_up_per_account_and_per_customer() {
    let opened = || Opened {
        customer_id: "ann".into(),
    };
    let balances = Scenario::<Bank>::new()
        .given::<Customer>("ann", [Registered { name: "Ann".into() }])
        .given::<Customer>("bob", [Registered { name: "Bob".into() }])
        .given::<Account>("acc-1", [opened(), Deposited { amount: 100 }])
        .given::<Account>("acc-2", [opened(), Deposited { amount: 50 }])
        .given::<Account>("acc-1", [Withdrawn { amount: 30 }])
        .run_handler(|bank| {
            let balances = bank.handler_with("balances", Balances::default());
            balances.on::<Customer>().on::<Account>().build()
        })
        .await;
    let state = balances.state().await;
    assert_eq!(state.accounts["acc-1"], 70);
    assert_eq!(state.accounts["acc-2"], 50);
    assert_eq!(state.customers["ann"], 120);
    assert_eq!(
        state.customers["bob"], 0,
        "a customer without accounts has 0"
    );
}

#[tokio::test]
async fn an_account_does_not_open_for_a_blocked_customer() {
    Scenario::<Bank>::new()
        .given::<Customer>("bob", [Registered { name: "Bob".into() }, Blocked])
        .when("acc-1", OpenAccount::for_customer("bob"))
        .then_rejected(BankError::CustomerBlocked("bob".into()))
        .await;
}
