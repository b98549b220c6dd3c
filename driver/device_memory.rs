// SPDX-License-Identifier: GPL-2.0

//! Device memory: the PCI driver (`pci`), the BAR it turns into a block and the gate that
//! stops every access to it on unbind (`bar`), and the one address_space through which every
//! user mapping of it is zapped (`rmap`).

pub(crate) mod bar;
pub(crate) mod pci;
pub(crate) mod rmap;
