//! Awaiting a provider's answer without putting the thread to sleep at once.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

/// Counts a provider's callers awaiting an answer, so that one waiting alone can poll.
///
/// Waking an executor thread that went to sleep costs tens of microseconds on a small
/// virtual machine, as much as a database's answer to a read. A caller waiting alone polls
/// for up to a window, yielding to the executor's other tasks and to other threads between
/// polls, then sleeps. Callers waiting together sleep at once, and a caller polling stops when
/// another comes: their work is shared (grouped appends and loads), and polling would take
/// the CPU the answers need.
///
/// ```
/// # async fn run() {
/// use std::time::Duration;
/// use evtstore_core::provider::Waiting;
/// let waiting = Waiting::new(Duration::from_micros(300));
/// let answer = waiting.poll(async { 42 }).await;
/// assert_eq!(answer, 42);
/// # }
/// ```
#[derive(Debug)]
pub struct Waiting {
    callers: AtomicUsize,
    window: Duration,
}

impl Waiting {
    /// The longest window a provider accepts: waking a thread costs tens of microseconds,
    /// and polling longer only spends a core.
    pub const MOST: Duration = Duration::from_millis(10);

    /// Callers waiting alone poll for up to `window` (none when it is zero).
    pub fn new(window: Duration) -> Self {
        Waiting {
            callers: AtomicUsize::new(0),
            window,
        }
    }

    /// Awaits `work`, polling it without sleeping for a while when no other caller waits.
    pub async fn poll<F: Future>(&self, work: F) -> F::Output {
        self.poll_driving(work, &Undriven).await
    }

    /// As [`poll`](Self::poll), with `driver` polling the provider's connections on the
    /// polling caller's thread between polls.
    pub async fn poll_driving<F: Future>(&self, work: F, driver: &impl Drive) -> F::Output {
        let others = self.callers.fetch_add(1, Ordering::AcqRel);
        let _done = Done(&self.callers);
        let mut work = std::pin::pin!(work);
        if others == 0
            && !self.window.is_zero()
            && let Some(done) = self.poll_alone(work.as_mut(), driver).await
        {
            return done;
        }
        work.await
    }

    /// Polls `work` until the window ends or another caller comes.
    async fn poll_alone<F: Future>(
        &self,
        mut work: std::pin::Pin<&mut F>,
        driver: &impl Drive,
    ) -> Option<F::Output> {
        let until = Instant::now() + self.window;
        while Instant::now() < until && self.callers.load(Ordering::Acquire) == 1 {
            // Polled, then again if the provider has polled its connections.
            let polled = std::future::poll_fn(|cx| {
                driver.start();
                let _stop = Stop(driver);
                if let Poll::Ready(done) = work.as_mut().poll(cx) {
                    return Poll::Ready(Some(done));
                }
                if !driver.drive() {
                    return Poll::Ready(None);
                }
                Poll::Ready(match work.as_mut().poll(cx) {
                    Poll::Ready(done) => Some(done),
                    Poll::Pending => None,
                })
            });
            if let Some(done) = polled.await {
                return Some(done);
            }
            // The answering thread may share this CPU: let it run.
            std::thread::yield_now();
            tokio::task::yield_now().await
        }
        None
    }
}

/// A provider's way to poll its connections on the thread of a caller polling for its answer
/// alone ([`Waiting::poll_driving`]), rather than on other threads.
///
/// Each round of polling is [`start`](Self::start), a poll of the caller's work,
/// [`drive`](Self::drive), another poll if it polled any connection, and
/// [`stop`](Self::stop), all in one poll of the caller's future: between `start` and `stop`
/// the caller never waits, so a provider may leave its connections' wakes to it meanwhile.
pub trait Drive {
    /// A round of polling starts.
    fn start(&self) {}
    /// Polls the provider's connections; true if it polled any.
    fn drive(&self) -> bool;
    /// The round ended (or unwound).
    fn stop(&self) {}
}

/// No connections to poll.
struct Undriven;

impl Drive for Undriven {
    fn drive(&self) -> bool {
        false
    }
}

/// Stops a driver's round when it ends or unwinds.
struct Stop<'a, D: Drive>(&'a D);

impl<D: Drive> Drop for Stop<'_, D> {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// Counts a caller out when its wait ends or is cancelled.
struct Done<'a>(&'a AtomicUsize);

impl Drop for Done<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    /// A future that counts its polls and is ready 100 ms after its first, woken then.
    fn counted(polls: Arc<AtomicUsize>) -> impl Future<Output = ()> {
        let ready = Arc::new(AtomicBool::new(false));
        std::future::poll_fn(move |cx| {
            if polls.fetch_add(1, Ordering::SeqCst) == 0 {
                let (waker, ready) = (cx.waker().clone(), ready.clone());
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(100));
                    ready.store(true, Ordering::SeqCst);
                    waker.wake();
                });
            }
            match ready.load(Ordering::SeqCst) {
                true => Poll::Ready(()),
                false => Poll::Pending,
            }
        })
    }

    /// Polls of a future ready after about 100 ms, awaited with `others` other callers
    /// waiting. The window is wide, so that a loaded machine still polls many times in it.
    async fn polls_with(others: usize) -> usize {
        let waiting = Waiting::new(Duration::from_millis(50));
        waiting.callers.store(others, Ordering::SeqCst);
        let polls = Arc::new(AtomicUsize::new(0));
        waiting.poll(counted(polls.clone())).await;
        polls.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn a_caller_cancelled_while_polling_is_counted_out() {
        let waiting = Waiting::new(Duration::from_secs(1));
        let never = std::future::pending::<()>();
        let cancelled = tokio::time::timeout(Duration::from_millis(5), waiting.poll(never));
        assert!(cancelled.await.is_err(), "the wait was cut short");
        let callers = waiting.callers.load(Ordering::SeqCst);
        assert_eq!(callers, 0, "no caller waits once the wait is dropped");
        let polls = Arc::new(AtomicUsize::new(0));
        waiting.poll(counted(polls.clone())).await;
        let alone = polls.load(Ordering::SeqCst);
        assert!(
            alone > 10,
            "the next caller is alone and polls: {alone} polls"
        );
    }

    /// Counts the calls of each of a driver's methods: start, drive and stop.
    #[derive(Default)]
    struct Counted([AtomicUsize; 3]);

    impl Drive for Counted {
        fn start(&self) {
            self.0[0].fetch_add(1, Ordering::SeqCst);
        }
        fn drive(&self) -> bool {
            let [started, _, stopped] = self.calls();
            assert_eq!(started, stopped + 1, "a drive outside a round");
            self.0[1].fetch_add(1, Ordering::SeqCst);
            true
        }
        fn stop(&self) {
            self.0[2].fetch_add(1, Ordering::SeqCst);
        }
    }

    impl Counted {
        fn calls(&self) -> [usize; 3] {
            self.0.each_ref().map(|c| c.load(Ordering::SeqCst))
        }
    }

    #[tokio::test]
    async fn a_caller_alone_drives_between_polls_and_one_with_others_does_not() {
        let waiting = Waiting::new(Duration::from_millis(50));
        let alone = Counted::default();
        waiting.poll_driving(counted(Arc::default()), &alone).await;
        let [started, drove, stopped] = alone.calls();
        assert!(drove > 10, "a caller alone drove {drove} times");
        assert!(
            started >= drove && stopped == started,
            "rounds: {:?}",
            alone.calls()
        );
        waiting.callers.store(1, Ordering::SeqCst);
        let together = Counted::default();
        waiting
            .poll_driving(counted(Arc::default()), &together)
            .await;
        assert_eq!(together.calls(), [0, 0, 0], "a caller with another slept");
    }

    #[tokio::test]
    async fn every_round_is_stopped_that_of_a_cancelled_caller_too() {
        let waiting = Waiting::new(Duration::from_secs(1));
        let driver = Counted::default();
        let never = std::future::pending::<()>();
        let cancelled = tokio::time::timeout(
            Duration::from_millis(5),
            waiting.poll_driving(never, &driver),
        );
        assert!(cancelled.await.is_err(), "the wait was cut short");
        let [started, _, stopped] = driver.calls();
        assert!(started > 0 && stopped == started, "{:?}", driver.calls());
    }

    #[tokio::test]
    async fn a_caller_alone_polls_and_callers_together_sleep() {
        let alone = polls_with(0).await;
        assert!(
            alone > 10,
            "a caller alone polled {alone} times in its window"
        );
        let together = polls_with(1).await;
        assert!(
            together <= 3,
            "a caller with another polled {together} times"
        );
    }
}
