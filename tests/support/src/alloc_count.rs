//! A counting global allocator for the allocation proofs of test binaries.
//!
//! `testkit::counting_allocator!()` at the top level of a test binary (which must
//! `#![allow(unsafe_code)]`: a global allocator is an `unsafe impl`) installs an allocator
//! that forwards to `System` and counts this thread's allocations while counting is on,
//! and defines `allocations_during(f) -> (count, f's result)`. Counting and the count are
//! per thread, so tests running on other threads cannot disturb each other's counts.

/// See the [module docs](crate::alloc_count).
#[macro_export]
macro_rules! counting_allocator {
    () => {
        struct CountingAllocator;

        thread_local! {
            static COUNTING: ::std::cell::Cell<bool> = const { ::std::cell::Cell::new(false) };
            static ALLOCATIONS: ::std::cell::Cell<u64> = const { ::std::cell::Cell::new(0) };
        }

        fn note_allocation() {
            if COUNTING.with(::std::cell::Cell::get) {
                ALLOCATIONS.with(|n| n.set(n.get() + 1));
            }
        }

        // SAFETY: every method forwards to `System` with the caller's arguments unchanged.
        unsafe impl ::std::alloc::GlobalAlloc for CountingAllocator {
            unsafe fn alloc(&self, layout: ::std::alloc::Layout) -> *mut u8 {
                note_allocation();
                unsafe { ::std::alloc::GlobalAlloc::alloc(&::std::alloc::System, layout) }
            }

            unsafe fn alloc_zeroed(&self, layout: ::std::alloc::Layout) -> *mut u8 {
                note_allocation();
                unsafe { ::std::alloc::GlobalAlloc::alloc_zeroed(&::std::alloc::System, layout) }
            }

            unsafe fn realloc(&self, ptr: *mut u8, layout: ::std::alloc::Layout, new_size: usize) -> *mut u8 {
                note_allocation();
                unsafe { ::std::alloc::GlobalAlloc::realloc(&::std::alloc::System, ptr, layout, new_size) }
            }

            unsafe fn dealloc(&self, ptr: *mut u8, layout: ::std::alloc::Layout) {
                unsafe { ::std::alloc::GlobalAlloc::dealloc(&::std::alloc::System, ptr, layout) }
            }
        }

        #[global_allocator]
        static GLOBAL: CountingAllocator = CountingAllocator;

        /// Runs `f` with allocation counting on for this thread; returns the count and `f`'s result.
        fn allocations_during<T>(f: impl FnOnce() -> T) -> (u64, T) {
            let before = ALLOCATIONS.with(::std::cell::Cell::get);
            COUNTING.with(|c| c.set(true));
            let out = f();
            COUNTING.with(|c| c.set(false));
            (ALLOCATIONS.with(::std::cell::Cell::get) - before, out)
        }
    };
}
