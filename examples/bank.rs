//! Run: `cargo run --example bank`
//!
//! A bank on the in-memory provider: customers, accounts that only a registered customer who
//! is not blocked may open (the command reads the customer), deposits and withdrawals refused
//! with a typed `BankError`, and a balances read model. `tests/bank.rs` tests the same domain
//! with `evtstore::testing`.

#[path = "bank/balances.rs"]
mod balances;
#[path = "bank/domain.rs"]
mod domain;

use balances::Balances;
use domain::{Account, Bank, BankError, Block, Customer, Deposit, OpenAccount, Register, Withdraw};
use evtstore::{CommandError, Domain, MemoryProvider};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bank: Domain<Bank> = Domain::new(MemoryProvider::new());
    bank.execute("ann", Register { name: "Ann".into() }).await?;
    bank.execute("bob", Register { name: "Bob".into() }).await?;
    bank.execute("bob", Block).await?;
    open_accounts(&bank).await?;
    move_money(&bank).await?;
    show_balances(&bank).await?;
    Ok(())
}

/// Ann opens an account; blocked bob and unknown carol may not.
async fn open_accounts(bank: &Domain<Bank>) -> evtstore::Result<()> {
    let account = bank.execute("acc-1", OpenAccount::for_customer("ann"));
    let account = account.await?;
    println!("ann opened {} at version {}", account.id, account.version);
    for (id, customer) in [("acc-2", "bob"), ("acc-3", "carol")] {
        let refused = bank.execute(id, OpenAccount::for_customer(customer));
        let outcome = refused
            .await
            .map_or_else(|e| e.to_string(), |_| "allowed?!".into());
        println!("{customer} opening {id}: {outcome}");
    }
    Ok(())
}

/// Deposits 100 and withdraws 30; withdrawing 500 is refused with the typed error.
async fn move_money(bank: &Domain<Bank>) -> evtstore::Result<()> {
    bank.execute("acc-1", Deposit { amount: 100 }).await?;
    let account = bank.execute("acc-1", Withdraw { amount: 30 }).await?;
    let balance = account.state.balance;
    println!("acc-1 after depositing 100 and withdrawing 30: {balance}");
    match bank.execute("acc-1", Withdraw { amount: 500 }).await {
        Err(CommandError::Rejected(BankError::InsufficientFunds { balance, requested })) => {
            println!("withdrawing {requested} from acc-1 refused: the balance is {balance}")
        }
        outcome => println!("withdrawing 500 from acc-1: {outcome:?}?!"),
    }
    Ok(())
}

/// Builds the balances read model from every event and prints it.
async fn show_balances(bank: &Domain<Bank>) -> evtstore::Result<()> {
    let balances = bank
        .handler_with("balances", Balances::default())
        .on::<Customer>()
        .on::<Account>()
        .build()?;
    let handled = balances.run_once().await?;
    let state = balances.state().await;
    println!("balances from {handled} events: {:?}", state.accounts);
    println!("totals per customer: {:?}", state.customers);
    Ok(())
}
