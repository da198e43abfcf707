//! Sealed events of an [`ENCRYPTED`](crate::Aggregate::ENCRYPTED) kind in a transactional
//! handler.

use std::sync::{Arc, Mutex};

use super::TxModel;
use super::kit::run;
use crate::Domain;
use crate::conformance::domain::{Note, Secret, SecretEvent, Tests};
use crate::provider::{TxHandlerBuilder, TxProvider};

/// A transactional handler gets sealed events opened, and passes over those whose key was
/// shredded (and the shredding's marker), writing nothing for them.
pub async fn sealed_events_are_opened_and_shredded_ones_passed_over<P, M>(
    provider: Arc<P>,
    model: M,
) where
    P: TxProvider,
    M: TxModel<P>,
{
    let domain = Domain::<Tests>::with_provider(provider.clone());
    let kept = domain.execute("s1", Note("kept")).await.expect("note s1");
    domain
        .execute("s2", Note("forgotten"))
        .await
        .expect("note s2");
    domain.shred::<Secret>("s2").await.expect("shred s2");

    let (seen, model) = (Arc::new(Mutex::new(Vec::new())), Arc::new(model));
    let (record, writer) = (seen.clone(), model.clone());
    let handler = TxHandlerBuilder::<P, Tests>::new(provider, "sealed")
        .handle::<Secret, _>(move |tx, event, meta| {
            let SecretEvent::Noted { text } = event;
            record.lock().unwrap().push(text.clone());
            writer.write(tx, meta.position, false)
        })
        .build()
        .expect("building the handler");
    run(&handler).await;
    assert_eq!(
        *seen.lock().unwrap(),
        ["kept"],
        "opened; the shredded one passed over"
    );
    assert_eq!(model.rows().await, [kept.position]);
}
