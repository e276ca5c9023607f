//! Keys of the relay's tables: newtypes so that a session index, a room index and a slab slot of another table
//! cannot be mixed up (the relay's tables are slabs with stable `u32` slots).

/// A session's slot in the relay's session tables. The control plane allocates it; every shard keeps its
/// forwarding record of the session in the same slot, so commands and events name sessions by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct SessionIdx(pub(crate) u32);

/// A room's slot in the relay's room tables (control plane and shards alike).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct RoomIdx(pub(crate) u32);

/// A session as named in a shard's event: its slot and the generation of the session that held the slot when the
/// event was made. Slots are reused; an event about a session that ended meanwhile (its slot perhaps taken by a new
/// one) is recognised by the generation and ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SessionRef {
    pub(crate) idx: SessionIdx,
    pub(crate) generation: u32,
}

/// A key of a [`Slab`](crate::slab::Slab): a `u32` slot number in a newtype.
pub(crate) trait SlabKey: Copy {
    fn from_slot(slot: u32) -> Self;
    fn slot(self) -> u32;
}

/// Implements [`SlabKey`] for a `u32` newtype.
macro_rules! slab_key {
    ($($t:ty),*) => {$(
        impl SlabKey for $t {
            #[inline]
            fn from_slot(slot: u32) -> Self {
                Self(slot)
            }
            #[inline]
            fn slot(self) -> u32 {
                self.0
            }
        }
    )*};
}

slab_key!(SessionIdx, RoomIdx);
