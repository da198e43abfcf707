//! Partitioned handlers: one handler split by aggregate id over K partitions, each with its
//! own bookmark and lease, shared out among the processes that start it.
//!
//! Each process holds a membership lease (`<name>#member:<owner>`); every quarter of the lease
//! time it lists the members and runs the partitions `p` with `p % members == its rank`,
//! stopping (and so releasing) the others. When a process joins or leaves, the partitions move
//! within one lease time; the partition leases keep two processes from ever running one
//! partition at once, even while their views of the members differ.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Handler, leasing};
use crate::error::Result;
use crate::provider::Provider;

/// The partition of an aggregate id among `of`: FNV-1a, the same in every process and build.
pub(super) fn partition_of(aggregate_id: &str, of: u32) -> u32 {
    let hash = aggregate_id
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    (hash % u64::from(of)) as u32
}

/// A handler split into partitions by aggregate id: each aggregate's events stay in order in
/// its partition, and the processes that start it share the partitions. Build it with
/// [`HandlerBuilder::build_partitioned`](super::HandlerBuilder::build_partitioned).
///
/// ```
/// # use evtstore_core::conformance::domain::{Counter, Tests};
/// # use evtstore_core::{Domain, MemoryProvider};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> evtstore_core::Result<()> {
/// let domain: Domain<Tests> = Domain::new(MemoryProvider::new());
/// let shipping = domain
///     .handler("shipping")
///     .handle::<Counter, _>(|_, _event, meta| {
///         println!("ship for {}", meta.aggregate_id); // each aggregate's events in order
///         Ok(())
///     })
///     .build_partitioned(8)?;
/// shipping.start(); // in every process: they share the 8 partitions
/// shipping.stop().await;
/// # Ok(()) }
/// ```
pub struct Partitioned<S> {
    name: String,
    partitions: Vec<Handler<S>>,
    owner: String,
    lease: Duration,
    balancer: Mutex<Option<(watch::Sender<bool>, JoinHandle<()>)>>,
}

impl<S: Send + 'static> Partitioned<S> {
    pub(super) fn new(name: String, partitions: Vec<Handler<S>>, lease: Duration) -> Self {
        Partitioned {
            name,
            partitions,
            owner: leasing::owner_name(),
            lease,
            balancer: Mutex::new(None),
        }
    }

    /// The partitions, in order: partition `p` handles the aggregates whose id hashes to `p`.
    pub fn partitions(&self) -> &[Handler<S>] {
        &self.partitions
    }

    /// Joins the processes running this handler and runs this process's share of the
    /// partitions in the background until [`stop`](Self::stop). Needs a Tokio runtime.
    pub fn start(&self) {
        let mut balancer = self.balancer.lock().unwrap_or_else(|e| e.into_inner());
        if balancer.is_some() {
            return;
        }
        let (stop, stopped) = watch::channel(false);
        let member = Member {
            name: format!("{}#member:", self.name),
            owner: self.owner.clone(),
            lease: self.lease,
            provider: self.partitions[0].inner.parts.provider.clone(),
        };
        let partitions = self.partitions.clone();
        let task = tokio::spawn(balance(member, partitions, stopped));
        *balancer = Some((stop, task));
    }

    /// Stops this process's partitions (releasing their leases, so that the other processes
    /// take them over at once) and leaves the members.
    pub async fn stop(&self) {
        let balancer = self
            .balancer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some((stop, task)) = balancer {
            let _ = stop.send(true);
            let _ = task.await;
        }
    }
}

/// This process among the members of a partitioned handler.
struct Member {
    name: String,
    owner: String,
    lease: Duration,
    provider: std::sync::Arc<dyn Provider>,
}

impl Member {
    /// Renews this process's membership and returns (its rank, the number of members).
    async fn rank(&self) -> Result<(usize, usize)> {
        let own = format!("{}{}", self.name, self.owner);
        self.provider
            .acquire_lease(&own, &self.owner, self.lease)
            .await?;
        let members = self.provider.leases(&self.name).await?;
        let mut owners: Vec<&str> = members.iter().map(|l| l.owner.as_str()).collect();
        owners.sort_unstable();
        owners.dedup();
        let rank = owners.iter().position(|o| *o == self.owner).unwrap_or(0);
        Ok((rank, owners.len().max(1)))
    }

    async fn leave(&self) {
        let own = format!("{}{}", self.name, self.owner);
        let lease = self
            .provider
            .acquire_lease(&own, &self.owner, self.lease)
            .await;
        if let Ok(Some(lease)) = lease {
            let _ = self.provider.release_lease(&lease).await;
        }
    }
}

async fn balance<S: Send + 'static>(
    member: Member,
    partitions: Vec<Handler<S>>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        match member.rank().await {
            Ok((rank, members)) => {
                for (p, handler) in partitions.iter().enumerate() {
                    let mine = p % members == rank;
                    if mine && !handler.is_running() {
                        handler.start();
                    } else if !mine && handler.is_running() {
                        handler.stop().await;
                    }
                }
            }
            Err(error) => tracing::warn!(handler = %member.name, %error, "membership not renewed"),
        }
        tokio::select! {
            _ = stopped.changed() => break,
            _ = tokio::time::sleep(member.lease / 4) => {}
        }
    }
    for handler in &partitions {
        handler.stop().await;
    }
    member.leave().await;
}

#[cfg(test)]
mod tests {
    use super::partition_of;

    #[test]
    fn partitions_are_stable_and_spread() {
        assert_eq!(partition_of("order-1", 8), partition_of("order-1", 8));
        let mut counts = [0; 8];
        for i in 0..8000 {
            counts[partition_of(&format!("order-{i}"), 8) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (800..1200).contains(&c)),
            "{counts:?}"
        );
    }
}
