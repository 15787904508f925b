//! The detector's caches (controllers layer): every watched object enters the detector's state
//! through one function, [`admit`], which turns it into the record kept for it, so what is kept
//! per object is decided in one place (which namespaces are kept at all: `watch::assigned`, just
//! before it).

use std::{
    collections::HashMap,
    sync::{PoisonError, RwLock},
};

use kube::{Resource, runtime::watcher};

/// Records by namespace, then name; cluster-scoped objects sit under the empty namespace.
#[derive(Debug)]
pub(super) struct Objects<R> {
    by_namespace: HashMap<Box<str>, HashMap<Box<str>, R>>,
    /// How many records, kept as they come and go (the metrics read it on every event).
    len: usize,
}

impl<R> Default for Objects<R> {
    fn default() -> Self {
        Self {
            by_namespace: HashMap::new(),
            len: 0,
        }
    }
}

impl<R> Objects<R> {
    pub(super) fn get(&self, namespace: &str, name: &str) -> Option<&R> {
        self.by_namespace.get(namespace)?.get(name)
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// (namespace, name, record) of every object.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&str, &str, &R)> {
        self.by_namespace.iter().flat_map(|(namespace, objects)| {
            objects
                .iter()
                .map(move |(name, record)| (namespace.as_ref(), name.as_ref(), record))
        })
    }

    fn insert(&mut self, namespace: String, name: String, record: R) {
        let replaced = self
            .by_namespace
            .entry(namespace.into_boxed_str())
            .or_default()
            .insert(name.into_boxed_str(), record);
        self.len += usize::from(replaced.is_none());
    }

    /// Whether there was such an object.
    fn remove(&mut self, namespace: &str, name: &str) -> bool {
        let Some(objects) = self.by_namespace.get_mut(namespace) else {
            return false;
        };
        let removed = objects.remove(name).is_some();
        // An emptied namespace's table would otherwise stay allocated for good.
        if objects.is_empty() {
            self.by_namespace.remove(namespace);
        }
        self.len -= usize::from(removed);
        removed
    }
}

#[derive(Debug)]
struct State<R> {
    /// Whether the first list has completed.
    ready: bool,
    objects: Objects<R>,
    /// A (re)list in progress; it replaces `objects` when complete, as the watcher's contract says.
    relist: Option<Objects<R>>,
}

/// One watch's records.
#[derive(Debug)]
pub(super) struct Cache<R> {
    state: RwLock<State<R>>,
}

impl<R> Default for Cache<R> {
    fn default() -> Self {
        Self {
            state: RwLock::new(State {
                ready: false,
                objects: Objects::default(),
                relist: None,
            }),
        }
    }
}

impl<R> Cache<R> {
    pub(super) fn ready(&self) -> bool {
        self.read_state(|s| s.ready)
    }

    /// Reads the records under the lock; never hold it across an await (it is not one).
    pub(super) fn read<T>(&self, f: impl FnOnce(&Objects<R>) -> T) -> T {
        self.read_state(|s| f(&s.objects))
    }

    pub(super) fn get(&self, namespace: &str, name: &str) -> Option<R>
    where
        R: Clone,
    {
        self.read(|objects| objects.get(namespace, name).cloned())
    }

    /// Every record, cloned (cheap for `Arc`s).
    pub(super) fn values(&self) -> Vec<R>
    where
        R: Clone,
    {
        self.read(|objects| objects.iter().map(|(_, _, r)| r.clone()).collect())
    }

    /// How many records a pass reads now (a list in progress not counted).
    pub(super) fn len(&self) -> usize {
        self.read(Objects::len)
    }

    fn read_state<T>(&self, f: impl FnOnce(&State<R>) -> T) -> T {
        // A panic elsewhere cannot leave a half-applied record: every write is one map operation.
        f(&self.state.read().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Where watched objects enter the detector's state: `record` turns an object into what is kept
/// of it (None: keep nothing), so the whole object is dropped as soon as it arrives. Returns
/// whether what a pass reads changed (a relist counts once, when it completes).
pub(super) fn admit<K, R>(
    cache: &Cache<R>,
    event: watcher::Event<K>,
    record: impl Fn(K) -> Option<R>,
) -> bool
where
    K: Resource,
    R: PartialEq,
{
    let key = |object: &K| {
        let meta = object.meta();
        (
            meta.namespace.clone().unwrap_or_default(),
            meta.name.clone().unwrap_or_default(),
        )
    };
    // Records are made before the lock is taken, so a pass reading the cache waits the least.
    enum Change<R> {
        Relist,
        Listed(String, String, Option<R>),
        Complete,
        Applied(String, String, Option<R>),
        Deleted(String, String),
    }
    let change = match event {
        watcher::Event::Init => Change::Relist,
        watcher::Event::InitApply(object) => {
            let (namespace, name) = key(&object);
            Change::Listed(namespace, name, record(object))
        }
        watcher::Event::InitDone => Change::Complete,
        watcher::Event::Apply(object) => {
            let (namespace, name) = key(&object);
            Change::Applied(namespace, name, record(object))
        }
        watcher::Event::Delete(object) => {
            let (namespace, name) = key(&object);
            Change::Deleted(namespace, name)
        }
    };
    let mut state = cache.state.write().unwrap_or_else(PoisonError::into_inner);
    match change {
        Change::Relist => {
            state.relist = Some(Objects::default());
            false
        }
        Change::Listed(namespace, name, Some(record)) => {
            state
                .relist
                .get_or_insert_with(Objects::default)
                .insert(namespace, name, record);
            false
        }
        Change::Listed(..) => false,
        Change::Complete => {
            if let Some(listed) = state.relist.take() {
                state.objects = listed;
            }
            state.ready = true;
            true
        }
        Change::Applied(namespace, name, Some(record)) => {
            if state.objects.get(&namespace, &name) == Some(&record) {
                return false;
            }
            state.objects.insert(namespace, name, record);
            true
        }
        Change::Applied(namespace, name, None) | Change::Deleted(namespace, name) => {
            state.objects.remove(&namespace, &name)
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;

    use super::*;

    fn object(namespace: &str, name: &str, value: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                namespace: Some(namespace.into()),
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            data: Some([("v".to_owned(), value.to_owned())].into()),
            ..ConfigMap::default()
        }
    }

    fn keep(object: ConfigMap) -> Option<String> {
        object.data?.remove("v").filter(|v| v != "drop")
    }

    fn all(cache: &Cache<String>) -> Vec<(String, String, String)> {
        let mut all: Vec<_> = cache.read(|o| {
            o.iter()
                .map(|(ns, n, r)| (ns.to_owned(), n.to_owned(), r.clone()))
                .collect()
        });
        all.sort();
        all
    }

    #[test]
    fn a_list_replaces_the_records_only_once_complete_and_changes_follow_it() {
        let cache = Cache::default();
        admit(&cache, watcher::Event::Init, keep);
        admit(
            &cache,
            watcher::Event::InitApply(object("a", "x", "1")),
            keep,
        );
        admit(
            &cache,
            watcher::Event::InitApply(object("b", "y", "drop")),
            keep,
        );
        assert!(!cache.ready());
        assert!(all(&cache).is_empty(), "a list in progress is not visible");
        admit(&cache, watcher::Event::InitDone, keep);
        assert!(cache.ready());
        assert_eq!(all(&cache), [("a".into(), "x".into(), "1".into())]);

        admit(&cache, watcher::Event::Apply(object("b", "y", "2")), keep);
        admit(
            &cache,
            watcher::Event::Apply(object("a", "x", "drop")),
            keep,
        );
        assert_eq!(all(&cache), [("b".into(), "y".into(), "2".into())]);
        assert_eq!(cache.get("b", "y").as_deref(), Some("2"));
        assert_eq!(cache.len(), 1, "one added, one dropped");

        // A relist drops what it no longer lists.
        admit(&cache, watcher::Event::Init, keep);
        admit(
            &cache,
            watcher::Event::InitApply(object("c", "z", "3")),
            keep,
        );
        assert_eq!(
            all(&cache).len(),
            1,
            "the old records serve until the list completes"
        );
        admit(
            &cache,
            watcher::Event::InitApply(object("c", "w", "4")),
            keep,
        );
        assert_eq!(cache.len(), 1, "a list in progress is not counted");
        admit(&cache, watcher::Event::InitDone, keep);
        assert_eq!(cache.len(), 2);
        admit(&cache, watcher::Event::Delete(object("c", "w", "4")), keep);
        admit(&cache, watcher::Event::Delete(object("c", "w", "4")), keep);
        assert_eq!(cache.len(), 1, "a second delete of one object counts once");
        assert_eq!(all(&cache), [("c".into(), "z".into(), "3".into())]);
        admit(&cache, watcher::Event::Delete(object("c", "z", "3")), keep);
        assert!(all(&cache).is_empty());
        assert_eq!(cache.len(), 0);
        assert!(
            cache.read(|o| o.by_namespace.is_empty()),
            "no empty namespace table is kept"
        );
    }

    #[test]
    fn only_a_change_of_what_is_kept_starts_a_pass() {
        let cache = Cache::default();
        assert!(!admit(&cache, watcher::Event::Init, keep));
        assert!(!admit(
            &cache,
            watcher::Event::InitApply(object("a", "x", "1")),
            keep
        ));
        assert!(admit(&cache, watcher::Event::InitDone, keep), "the list");
        assert!(
            !admit(&cache, watcher::Event::Apply(object("a", "x", "1")), keep),
            "the same record again"
        );
        assert!(admit(
            &cache,
            watcher::Event::Apply(object("a", "x", "2")),
            keep
        ));
        assert!(
            !admit(
                &cache,
                watcher::Event::Apply(object("b", "y", "drop")),
                keep
            ),
            "nothing kept of it, nothing was there"
        );
        assert!(admit(
            &cache,
            watcher::Event::Delete(object("a", "x", "2")),
            keep
        ));
        assert!(!admit(
            &cache,
            watcher::Event::Delete(object("a", "x", "2")),
            keep
        ));
    }
}
