//! The table of tests. Each entry is one function; a per-strategy entry runs once for each of
//! remap, fault, page and huge, named `<name>_<strategy>`.

mod adversarial_ioctl;
mod adversarial_lifetime;
mod adversarial_mmap;
mod alloc_map;
mod debugger;
mod device;
mod dma;
mod dmabuf;
mod doctor;
mod examples;
mod fault_injection;
pub mod gup;
mod huge;
pub mod ivshmem;
mod lifecycle;
mod lifetime;
mod mapping;
mod persist;
mod races;
mod reload;
mod scale;
mod sharing;
pub mod validation;
mod views;

use cmamap::Strategy;

use crate::check::TestResult;
use crate::ctx::Ctx;

type Plain = fn(&Ctx) -> TestResult;
type PerStrategy = fn(&Ctx, Strategy) -> TestResult;

enum Kind {
    Plain(Plain),
    PerStrategy(PerStrategy),
}

struct Entry {
    name: &'static str,
    kind: Kind,
}

const fn plain(name: &'static str, run: Plain) -> Entry {
    Entry {
        name,
        kind: Kind::Plain(run),
    }
}

const fn per_strategy(name: &'static str, run: PerStrategy) -> Entry {
    Entry {
        name,
        kind: Kind::PerStrategy(run),
    }
}

const TABLE: &[Entry] = &[
    // The device and the driver's self-description.
    plain("device_node_opens", device::device_node_opens),
    plain("stat_reports_abi_version", device::stat_reports_abi_version),
    plain("module_params_match_stat", device::module_params_match_stat),
    plain("debugfs_lists_blocks", device::debugfs_lists_blocks),
    // `cmamap doctor`, healthy and broken (doctor_without_cma only in the cma=0 VM).
    plain("doctor_healthy", doctor::doctor_healthy),
    plain("doctor_user_not_in_group", doctor::doctor_user_not_in_group),
    plain(doctor::NO_CMA_CASE, doctor::doctor_without_cma),
    // The C examples of examples/c, as users will run them.
    plain("example_c_alloc_map", examples::example_c_alloc_map),
    plain("example_c_share", examples::example_c_share),
    plain("example_c_persist", examples::example_c_persist),
    plain("dma_example_c_edu", examples::dma_example_c_edu),
    plain("example_rust_alloc_map", examples::example_rust_alloc_map),
    plain(
        "example_rust_persist_share",
        examples::example_rust_persist_share,
    ),
    // Argument validation.
    plain("unknown_ioctl_enotty", validation::unknown_ioctl_enotty),
    plain(
        "alloc_reserved_nonzero_einval",
        validation::alloc_reserved_nonzero_einval,
    ),
    plain(
        "free_reserved_nonzero_einval",
        validation::free_reserved_nonzero_einval,
    ),
    plain(
        "info_list_stat_reserved_einval",
        validation::info_list_stat_reserved_einval,
    ),
    plain(
        "alloc_unknown_flags_einval",
        validation::alloc_unknown_flags_einval,
    ),
    plain(
        "alloc_bad_strategy_einval",
        validation::alloc_bad_strategy_einval,
    ),
    plain(
        "alloc_align_order_too_big_einval",
        validation::alloc_align_order_too_big_einval,
    ),
    plain("alloc_size_zero_einval", validation::alloc_size_zero_einval),
    plain(
        "alloc_size_overflow_einval",
        validation::alloc_size_overflow_einval,
    ),
    plain("alloc_huge_size_enospc", validation::alloc_huge_size_enospc),
    plain(
        "per_file_limit_is_cumulative",
        validation::per_file_limit_is_cumulative,
    ),
    plain(
        "alloc_unaligned_size_rounded_up",
        validation::alloc_unaligned_size_rounded_up,
    ),
    plain("bad_pointer_efault", validation::bad_pointer_efault),
    plain(
        "list_past_the_largest_kmalloc",
        adversarial_ioctl::list_past_the_largest_kmalloc,
    ),
    // Many blocks: the index, per-file id spaces, and 100,000 blocks (make test-long).
    plain(
        "release_work_follows_own_blocks",
        scale::release_work_follows_own_blocks,
    ),
    plain(
        "id_exhaustion_hurts_only_its_file",
        scale::id_exhaustion_hurts_only_its_file,
    ),
    plain("hundred_thousand_blocks", scale::hundred_thousand_blocks),
    // Allocation, description and release.
    plain(
        "alloc_info_list_free_roundtrip",
        lifecycle::alloc_info_list_free_roundtrip,
    ),
    plain("double_free_enoent", lifecycle::double_free_enoent),
    plain("unknown_id_enoent", lifecycle::unknown_id_enoent),
    plain("ids_not_reused", lifecycle::ids_not_reused),
    plain("other_file_id_enoent", lifecycle::other_file_id_enoent),
    plain("close_releases_blocks", lifecycle::close_releases_blocks),
    per_strategy("block_is_zeroed", lifecycle::block_is_zeroed),
    plain("stat_tracks_usage", lifecycle::stat_tracks_usage),
    plain(
        "default_strategy_resolves",
        lifecycle::default_strategy_resolves,
    ),
    plain(
        "align_order_is_honoured",
        lifecycle::align_order_is_honoured,
    ),
    plain("cma_free_tracks_blocks", lifecycle::cma_free_tracks_blocks),
    // Mapping.
    per_strategy("map_roundtrip", mapping::map_roundtrip),
    per_strategy("minor_faults", mapping::minor_faults),
    plain("mmap_past_end_einval", mapping::mmap_past_end_einval),
    plain(
        "mmap_unknown_block_einval",
        mapping::mmap_unknown_block_einval,
    ),
    plain("mmap_private_einval", mapping::mmap_private_einval),
    plain(
        "readonly_fd_refuses_write",
        mapping::readonly_fd_refuses_write,
    ),
    plain("pread_pwrite_bounds", mapping::pread_pwrite_bounds),
    per_strategy("mremap_grow_fails", mapping::mremap_grow_fails),
    // Memory outliving its id or its file.
    per_strategy("free_while_mapped", lifetime::free_while_mapped),
    per_strategy("close_while_mapped", lifetime::close_while_mapped),
    // Sharing between processes.
    per_strategy("fork_shares_block", sharing::fork_shares_block),
    plain("scm_rights_passes_file", sharing::scm_rights_passes_file),
    // Persistent blocks and privileges.
    plain(
        "persist_visible_to_other_opens",
        persist::persist_visible_to_other_opens,
    ),
    plain(
        "persist_needs_cap_sys_admin",
        persist::persist_needs_cap_sys_admin,
    ),
    plain(
        "phys_addr_needs_cap_sys_admin",
        persist::phys_addr_needs_cap_sys_admin,
    ),
    // ALLOC_MAP and UNMAP_FREE.
    per_strategy("alloc_map_roundtrip", alloc_map::alloc_map_roundtrip),
    plain(
        "alloc_map_bad_prot_einval",
        alloc_map::alloc_map_bad_prot_einval,
    ),
    plain(
        "unmap_free_wrong_addr_einval",
        alloc_map::unmap_free_wrong_addr_einval,
    ),
    plain(
        "unmap_free_plain_mmap_einval",
        alloc_map::unmap_free_plain_mmap_einval,
    ),
    // Debuggers: /proc/PID/mem and ptrace through every strategy.
    per_strategy(
        "proc_mem_reaches_mappings",
        debugger::proc_mem_reaches_mappings,
    ),
    per_strategy("ptrace_peeks_and_pokes", debugger::ptrace_peeks_and_pokes),
    // get_user_pages.
    per_strategy("vmsplice_gup", gup::vmsplice_gup),
    per_strategy("long_term_pin_returns", gup::long_term_pin_returns),
    plain(
        "vmsplice_pins_outlive_free",
        gup::vmsplice_pins_outlive_free,
    ),
    // Views: one block mapped through any strategy.
    plain("views_share_data", views::views_share_data),
    plain("view_fault_counts", views::view_fault_counts),
    plain(
        "view_gup_only_through_page_view",
        views::view_gup_only_through_page_view,
    ),
    plain("view_invalid_einval", views::view_invalid_einval),
    // The huge strategy: PMD entries where aligned, 4 KiB faults elsewhere.
    plain(
        "huge_64m_touch_takes_32_faults",
        huge::huge_64m_touch_takes_32_faults,
    ),
    plain("huge_data_across_2m_edges", huge::huge_data_across_2m_edges),
    plain("huge_partial_mappings", huge::huge_partial_mappings),
    plain(
        "huge_misplaced_address_falls_back",
        huge::huge_misplaced_address_falls_back,
    ),
    plain(
        "huge_view_of_aligned_page_block",
        huge::huge_view_of_aligned_page_block,
    ),
    plain(
        "huge_split_mapping_keeps_data",
        huge::huge_split_mapping_keeps_data,
    ),
    plain(
        "huge_fork_shares_pmd_mapping",
        huge::huge_fork_shares_pmd_mapping,
    ),
    plain(
        "huge_alloc_map_is_2m_aligned",
        huge::huge_alloc_map_is_2m_aligned,
    ),
    // Who allocated a block.
    plain("owner_tgid_is_allocator", sharing::owner_tgid_is_allocator),
    plain(
        "owner_tgid_in_pid_namespace",
        sharing::owner_tgid_in_pid_namespace,
    ),
    // Device DMA through edu: only in the DMA VMs (see `needs_own_vm`).
    plain("dma_map_gives_bus_address", dma::dma_map_gives_bus_address),
    plain(
        "dma_edu_copies_between_pages",
        dma::dma_edu_copies_between_pages,
    ),
    plain(
        "dma_unmap_fences_the_device",
        dma::dma_unmap_fences_the_device,
    ),
    plain("dma_out_of_reach_refused", dma::dma_out_of_reach_refused),
    plain(
        "dma_free_and_close_end_mappings",
        dma::dma_free_and_close_end_mappings,
    ),
    plain(
        "dma_device_removal_ends_mappings",
        dma::dma_device_removal_ends_mappings,
    ),
    plain("dma_bad_input_refused", dma::dma_bad_input_refused),
    plain(
        "dma_sync_picks_overlapping_mappings",
        dma::dma_sync_picks_overlapping_mappings,
    ),
    plain(
        "dma_sync_calls_the_dma_api",
        dma::dma_sync_calls_the_dma_api,
    ),
    plain("dma_cli_maps_syncs_unmaps", dma::dma_cli_maps_syncs_unmaps),
    plain("dma_alloc_for_device", dma::dma_alloc_for_device),
    plain("dma_bounce_refused", dma::dma_bounce_refused),
    plain(
        "dma_bounce_dmabuf_import_refused",
        dma::dma_bounce_dmabuf_import_refused,
    ),
    plain(
        "dma_dmabuf_sync_covers_device_mappings",
        dma::dma_dmabuf_sync_covers_device_mappings,
    ),
    // dma-buf export, and vivid importing with both videobuf2 allocators.
    per_strategy("dmabuf_export_maps_block", dmabuf::dmabuf_export_maps_block),
    plain("dmabuf_export_bad_input", dmabuf::dmabuf_export_bad_input),
    plain(
        "dmabuf_shows_in_bufinfo_and_fdinfo",
        dmabuf::dmabuf_shows_in_bufinfo_and_fdinfo,
    ),
    plain(
        "dmabuf_outlives_free_and_close",
        dmabuf::dmabuf_outlives_free_and_close,
    ),
    plain("dmabuf_crosses_processes", dmabuf::dmabuf_crosses_processes),
    plain("dmabuf_cli_export", dmabuf::dmabuf_cli_export),
    plain(
        "dmabuf_vivid_capture_vmalloc",
        dmabuf::dmabuf_vivid_capture_vmalloc,
    ),
    plain(
        "dmabuf_vivid_capture_dma_contig",
        dmabuf::dmabuf_vivid_capture_dma_contig,
    ),
    plain(
        "dmabuf_vivid_free_while_streaming",
        dmabuf::dmabuf_vivid_free_while_streaming,
    ),
    // Device memory: the BAR of an ivshmem PCI device (skipped without one).
    plain("ivshmem_block_listed", ivshmem::ivshmem_block_listed),
    plain(
        "ivshmem_proc_mem_reaches_bar",
        ivshmem::ivshmem_proc_mem_reaches_bar,
    ),
    plain("ivshmem_reads_host_data", ivshmem::ivshmem_reads_host_data),
    plain(
        "ivshmem_guest_writes_reach_host",
        ivshmem::ivshmem_guest_writes_reach_host,
    ),
    plain("ivshmem_cache_modes", ivshmem::ivshmem_cache_modes),
    plain(
        "ivshmem_copy_keeps_outside_wc",
        ivshmem::ivshmem_copy_keeps_outside_wc,
    ),
    plain(
        "ivshmem_bad_mappings_refused",
        ivshmem::ivshmem_bad_mappings_refused,
    ),
    plain(
        "ivshmem_unbind_while_mapped",
        ivshmem::ivshmem_unbind_while_mapped,
    ),
    // Adversarial: edges of sizes and offsets, mappings cut apart, lifetimes, races.
    plain(
        "alloc_size_edges_refused",
        adversarial_ioctl::alloc_size_edges_refused,
    ),
    plain(
        "null_and_readonly_args_efault",
        adversarial_ioctl::null_and_readonly_args_efault,
    ),
    plain(
        "output_padding_zeroed",
        adversarial_ioctl::output_padding_zeroed,
    ),
    plain(
        "alloc_until_enomem_then_again",
        adversarial_ioctl::alloc_until_enomem_then_again,
    ),
    plain(
        "mmap_offset_overflow_refused",
        adversarial_mmap::mmap_offset_overflow_refused,
    ),
    per_strategy(
        "munmap_pieces_and_refill",
        adversarial_mmap::munmap_pieces_and_refill,
    ),
    per_strategy(
        "mremap_shrink_move_dontunmap",
        adversarial_mmap::mremap_shrink_move_dontunmap,
    ),
    per_strategy("madvise_and_mlock", adversarial_mmap::madvise_and_mlock),
    plain(
        "unmap_free_refuses_plain_mmap_at_old_address",
        adversarial_mmap::unmap_free_refuses_plain_mmap_at_old_address,
    ),
    plain(
        "unmap_free_after_free_keeps_mapping",
        adversarial_mmap::unmap_free_after_free_keeps_mapping,
    ),
    plain(
        "unmap_free_racing_free_changes_nothing",
        adversarial_mmap::unmap_free_racing_free_changes_nothing,
    ),
    plain(
        "huge_pmd_split_paths",
        adversarial_mmap::huge_pmd_split_paths,
    ),
    per_strategy("smaps_vmflags", adversarial_mmap::smaps_vmflags),
    per_strategy(
        "odirect_read_into_mapping",
        adversarial_mmap::odirect_read_into_mapping,
    ),
    per_strategy(
        "stale_mapping_probe",
        adversarial_lifetime::stale_mapping_probe,
    ),
    per_strategy(
        "fork_either_exits_first",
        adversarial_lifetime::fork_either_exits_first,
    ),
    per_strategy("madv_dontfork", adversarial_lifetime::madv_dontfork),
    plain(
        "sigkill_with_blocks_and_mappings",
        adversarial_lifetime::sigkill_with_blocks_and_mappings,
    ),
    per_strategy("race_fault_vs_munmap", races::race_fault_vs_munmap),
    per_strategy("race_uaccess_vs_munmap", races::race_uaccess_vs_munmap),
    per_strategy("race_free_vs_touch", races::race_free_vs_touch),
    per_strategy("race_fork_during_faults", races::race_fork_during_faults),
    plain("race_alloc_free_one_fd", races::race_alloc_free_one_fd),
    plain("race_alloc_map_one_fd", races::race_alloc_map_one_fd),
    plain("race_alloc_free_many_fds", races::race_alloc_free_many_fds),
    // The model-based random tester.
    plain("fuzz_model", crate::fuzz::fuzz_model),
    plain("fuzz_progress_lines", crate::fuzz::fuzz_progress_lines),
    // Fault injection through fail-nth.
    per_strategy(
        "fault_injection_alloc",
        fault_injection::fault_injection_alloc,
    ),
    per_strategy(
        "fault_injection_alloc_map",
        fault_injection::fault_injection_alloc_map,
    ),
    per_strategy(
        "fault_injection_mmap",
        fault_injection::fault_injection_mmap,
    ),
    // Last: these unload and reload the module (the runner holds no file between tests).
    plain(
        "alloc_over_max_block_size_enospc",
        validation::alloc_over_max_block_size_enospc,
    ),
    plain(
        "rmmod_refused_while_dmabuf_lives",
        reload::rmmod_refused_while_dmabuf_lives,
    ),
    plain("rmmod_refused_while_open", reload::rmmod_refused_while_open),
    plain("doctor_without_module", doctor::doctor_without_module),
    plain(
        "rmmod_refused_while_mapped",
        reload::rmmod_refused_while_mapped,
    ),
    plain(
        "rmmod_refused_while_pages_pinned",
        reload::rmmod_refused_while_pages_pinned,
    ),
    plain(
        "rmmod_refused_while_debugfs_open",
        reload::rmmod_refused_while_debugfs_open,
    ),
    plain(
        "ivshmem_rmmod_releases_region",
        ivshmem::ivshmem_rmmod_releases_region,
    ),
    plain(
        "insmod_rmmod_cycles",
        adversarial_lifetime::insmod_rmmod_cycles,
    ),
];

/// One runnable test.
pub struct Case {
    pub name: String,
    run: Runner,
}

enum Runner {
    Plain(Plain),
    Strategy(PerStrategy, Strategy),
}

impl Case {
    pub fn run(&self, ctx: &Ctx) -> TestResult {
        match self.run {
            Runner::Plain(run) => run(ctx),
            Runner::Strategy(run, strategy) => run(ctx, strategy),
        }
    }
}

/// Every test, per-strategy entries expanded, in table order.
pub fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for entry in TABLE {
        match entry.kind {
            Kind::Plain(run) => cases.push(Case {
                name: entry.name.to_owned(),
                run: Runner::Plain(run),
            }),
            Kind::PerStrategy(run) => {
                for strategy in Strategy::CONCRETE {
                    cases.push(Case {
                        name: format!("{}_{strategy}", entry.name),
                        run: Runner::Strategy(run, strategy),
                    });
                }
            }
        }
    }
    cases
}

/// Cases that take far longer than the rest under TCG (about 25 s, 25 s and 12 s).
const LONG_CASES: [&str; 3] = [
    "alloc_until_enomem_then_again",
    "fuzz_model",
    "insmod_rmmod_cycles",
];

/// Whether a case needs the ivshmem device, which only shard 0's VM has.
fn needs_ivshmem(name: &str) -> bool {
    name.starts_with("ivshmem_")
}

/// Whether a case needs a VM of its own: a DMA VM (an edu device, a named set-up), which
/// runs `cmamap-test dma_`, or the cma=0 VM; the shards leave these to the VMs of `make test`.
pub fn needs_own_vm(name: &str) -> bool {
    name.starts_with("dma_") || name == doctor::NO_CMA_CASE
}

/// The cases of shard `shard` of `shards`, in table order (so the reloading cases stay last).
/// The long cases are dealt out first, one to each shard in turn, and the others after them
/// in order, so that the shards take about as long; ivshmem cases go to shard 0, and DMA cases
/// to none.
pub fn shard(cases: Vec<Case>, shard: usize, shards: usize) -> Vec<Case> {
    let mut long_dealt = 0;
    let mut short_dealt = LONG_CASES.len();
    cases
        .into_iter()
        .filter(|case| !needs_own_vm(&case.name))
        .filter(|case| {
            let owner = if needs_ivshmem(&case.name) {
                0
            } else if LONG_CASES.contains(&case.name.as_str()) {
                long_dealt += 1;
                (long_dealt - 1) % shards
            } else {
                short_dealt += 1;
                (short_dealt - 1) % shards
            };
            owner == shard
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(cases: &[Case]) -> Vec<&str> {
        cases.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn shards_partition_the_cases_in_order() {
        let all = cases();
        let total = all.len();
        let all_own = all.iter().filter(|c| needs_own_vm(&c.name)).count();
        assert!(all_own > 0);
        let mut seen = Vec::new();
        for k in 0..3 {
            let part = shard(cases(), k, 3);
            let part_names = names(&part);
            // Table order within a shard.
            let positions: Vec<usize> = part_names
                .iter()
                .map(|n| all.iter().position(|c| c.name == *n).unwrap())
                .collect();
            assert!(positions.windows(2).all(|w| w[0] < w[1]));
            seen.extend(part.into_iter().map(|c| c.name));
        }
        seen.sort();
        let mut expected: Vec<String> = all
            .into_iter()
            .map(|c| c.name)
            .filter(|name| !needs_own_vm(name))
            .collect();
        expected.sort();
        assert_eq!(seen.len(), total - all_own);
        assert_eq!(seen, expected);
    }

    #[test]
    fn long_cases_are_spread_and_ivshmem_stays_on_shard_0() {
        for long in LONG_CASES {
            assert!(cases().iter().any(|c| c.name == long), "{long} is no case");
        }
        let first = shard(cases(), 0, 2);
        let second = shard(cases(), 1, 2);
        let long_in = |part: &[Case]| {
            part.iter()
                .filter(|c| LONG_CASES.contains(&c.name.as_str()))
                .count()
        };
        assert_eq!((long_in(&first), long_in(&second)), (2, 1));
        assert!(second.iter().all(|c| !needs_ivshmem(&c.name)));
        assert!(first.iter().any(|c| needs_ivshmem(&c.name)));
        let without_dma: Vec<Case> = cases()
            .into_iter()
            .filter(|c| !needs_own_vm(&c.name))
            .collect();
        assert_eq!(names(&shard(cases(), 0, 1)), names(&without_dma));
    }
}
