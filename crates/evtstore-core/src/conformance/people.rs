//! [`Person`] (`"people"`), at revision 3: its `named` event changed shape twice (a full name
//! at revision 1, a first and last name at 2, a given and family name at 3), and `moved` never
//! did. Upcasters bring the older shapes up to date.

use std::convert::Infallible;

use serde::{Deserialize, Serialize};

use crate::{Aggregate, Command, Decision, Domain, EventMeta, Loaded, Upcasters};

/// The events of a person, in their current shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum PersonEvent {
    /// Named (revision 3).
    Named {
        /// The given name.
        given: String,
        /// The family name.
        family: String,
    },
    /// Moved to a city (unchanged since revision 1).
    Moved {
        /// The city.
        city: String,
    },
}

/// `named` up to revision 1.
#[derive(Deserialize)]
struct NamedV1 {
    name: String,
}

/// `named` at revision 2, and its input up to 2.
#[derive(Serialize, Deserialize)]
struct NamedV2 {
    first: String,
    last: String,
}

/// `named` at revision 3.
#[derive(Serialize)]
struct NamedV3 {
    given: String,
    family: String,
}

/// A person: a name and a city.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    /// "given family".
    pub name: String,
    /// The last city moved to.
    pub city: String,
}

impl Aggregate for Person {
    const STREAM: &'static str = "people";
    const REVISION: u32 = 3;
    type Event = PersonEvent;

    fn fold(&mut self, event: &PersonEvent, _meta: &EventMeta) {
        match event {
            PersonEvent::Named { given, family } => self.name = format!("{given} {family}"),
            PersonEvent::Moved { city } => self.city.clone_from(city),
        }
    }

    fn upcasters() -> Upcasters {
        Upcasters::new()
            .add("named", 1, |v1: NamedV1| {
                let (first, last) = v1.name.split_once(' ').unwrap_or((&v1.name, ""));
                NamedV2 {
                    first: first.into(),
                    last: last.into(),
                }
            })
            .add("named", 2, |v2: NamedV2| NamedV3 {
                given: v2.first,
                family: v2.last,
            })
    }
}

/// Renames a person.
pub struct Rename {
    /// The given name.
    pub given: String,
    /// The family name.
    pub family: String,
}

impl<D> Command<D> for Rename {
    type Aggregate = Person;
    type Error = Infallible;

    async fn handle(self, _: &Loaded<Person>, _: &Domain<D>) -> Decision<Self, D> {
        let (given, family) = (self.given, self.family);
        Ok(vec![PersonEvent::Named { given, family }])
    }
}
