//! A minimal slab: stable slots in a `Vec`, freed slots reused, keyed by a newtype ([`SlabKey`]). Slots are what
//! rooms and lookup maps hold, so a member list is a `Vec<SessionIdx>` and forwarding needs no hashing beyond the
//! sender's token.

use std::marker::PhantomData;

use crate::ids::SlabKey;

#[derive(Debug)]
pub(crate) struct Slab<K, T> {
    slots: Vec<Option<T>>,
    free: Vec<u32>,
    len: usize,
    key: PhantomData<K>,
}

impl<K: SlabKey, T> Slab<K, T> {
    pub(crate) fn new() -> Self {
        Self { slots: Vec::new(), free: Vec::new(), len: 0, key: PhantomData }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Stores `value`; `None` when 2^32 slots are in use (the relay's own caps stop far earlier).
    pub(crate) fn insert(&mut self, value: T) -> Option<K> {
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                let i = u32::try_from(self.slots.len()).ok()?;
                self.slots.push(None);
                i
            }
        };
        // `idx` is either a freed slot or the one just pushed: always in bounds.
        self.slots[idx as usize] = Some(value);
        self.len += 1;
        Some(K::from_slot(idx))
    }

    /// Stores `value` in slot `key` (a shard mirrors the control plane's slots); `false` if the slot is taken or
    /// beyond 2^32.
    pub(crate) fn insert_at(&mut self, key: K, value: T) -> bool {
        let idx = key.slot() as usize;
        if idx >= self.slots.len() {
            self.slots.resize_with(idx + 1, || None);
        }
        let Some(slot) = self.slots.get_mut(idx) else { return false };
        if slot.is_some() {
            return false;
        }
        *slot = Some(value);
        self.len += 1;
        true
    }

    pub(crate) fn remove(&mut self, key: K) -> Option<T> {
        let v = self.slots.get_mut(key.slot() as usize)?.take()?;
        self.free.push(key.slot());
        self.len -= 1;
        Some(v)
    }

    #[inline]
    pub(crate) fn get(&self, key: K) -> Option<&T> {
        self.slots.get(key.slot() as usize)?.as_ref()
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, key: K) -> Option<&mut T> {
        self.slots.get_mut(key.slot() as usize)?.as_mut()
    }

    /// Every entry with its key, in slot order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (K, &T)> + '_ {
        self.slots.iter().enumerate().filter_map(|(i, v)| Some((K::from_slot(u32::try_from(i).ok()?), v.as_ref()?)))
    }

    /// Every value, in slot order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &T> + '_ {
        self.slots.iter().flatten()
    }
}
