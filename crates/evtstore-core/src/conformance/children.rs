//! Child processes of a multi-process case: started, each `handled …` line they print read
//! into records as it comes, resumed and killed when dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command as Process, Stdio};
use std::sync::{Arc, Mutex};

/// The children, and a record of each `handled …` line: made by `parse(child, rest of line)`.
pub(super) struct Children<T> {
    pub(super) children: Vec<Child>,
    pub(super) records: Arc<Mutex<Vec<T>>>,
}

impl<T: Clone + Send + 'static> Children<T> {
    /// Starts `count` children with `start`, their stdin and stdout piped.
    pub(super) fn start(
        count: usize,
        start: &dyn Fn() -> Process,
        parse: fn(usize, &str) -> Option<T>,
    ) -> Self {
        let records = Arc::new(Mutex::new(Vec::new()));
        let children = (0..count).map(|n| {
            let child = start().stdin(Stdio::piped()).stdout(Stdio::piped()).spawn();
            let mut child = child.expect("starting a child");
            let lines = BufReader::new(child.stdout.take().expect("the child's stdout")).lines();
            let records = records.clone();
            std::thread::spawn(move || {
                for line in lines.map_while(|l| l.ok()) {
                    let record = line
                        .strip_prefix("handled ")
                        .and_then(|rest| parse(n, rest));
                    records.lock().unwrap().extend(record);
                }
            });
            child
        });
        Children {
            children: children.collect(),
            records,
        }
    }

    /// The records so far.
    pub(super) fn records(&self) -> Vec<T> {
        self.records.lock().unwrap().clone()
    }

    /// How many records so far.
    pub(super) fn count(&self) -> usize {
        self.records.lock().unwrap().len()
    }

    /// Sends a signal (`-STOP`, `-CONT`) to child `n`.
    pub(super) fn signal(&self, n: usize, signal: &str) {
        let pid = self.children[n].id().to_string();
        let sent = Process::new("kill").args([signal, pid.as_str()]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill {signal} {pid}");
    }
}

impl<T> Drop for Children<T> {
    fn drop(&mut self) {
        for child in &mut self.children {
            let pid = child.id().to_string();
            let resume = Process::new("kill")
                .args(["-CONT", &pid])
                .stderr(Stdio::null())
                .status();
            drop(resume); // an exited child has nothing to resume
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
