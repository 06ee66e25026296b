// Device pieces of the sparse MLA kernel w3 (mla_sparse_w3.cu) that share the gather of a token's rows between the
// two 64-head CTAs of a thread-block cluster: cluster rank, peer addresses (mapa), local shared-memory stores, the
// cluster barrier, st.async into the peer with complete_tx on its mbarrier, remote mbarrier arrivals and
// cluster-scope waits, and one thread's FP8 row piece in flight (8 threads per row: chunk c0 of every 64-column
// block, so the 8 threads of a row write whole 128-byte lines).
#pragma once

#include "backend/cuda/mla_sparse_wgmma.cuh"

namespace dsa::backend::cuda::mla_cluster {

using namespace mla_wg;

// ---- cluster / distributed-shared-memory primitives (32-bit shared addresses) ----
__device__ __forceinline__ uint32_t cluster_rank() {
    uint32_t r;
    asm volatile("mov.u32 %0, %%cluster_ctarank;\n" : "=r"(r));
    return r;
}
// The address of the same shared-memory offset in CTA `rank` of the cluster (a shared::cluster address).
__device__ __forceinline__ uint32_t map_rank(uint32_t saddr, uint32_t rank) {
    uint32_t r;
    asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(r) : "r"(saddr), "r"(rank));
    return r;
}
__device__ __forceinline__ void st_local16(uint32_t addr, uint4 v) {
    asm volatile("st.shared.v4.b32 [%0], {%1, %2, %3, %4};\n" ::"r"(addr), "r"(v.x), "r"(v.y), "r"(v.z), "r"(v.w)
                 : "memory");
}
__device__ __forceinline__ void st_local4(uint32_t addr, int32_t v) {
    asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(addr), "r"(v) : "memory");
}
__device__ __forceinline__ void cluster_arrive_release() {
    asm volatile("barrier.cluster.arrive.release.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void cluster_wait_acquire() {
    asm volatile("barrier.cluster.wait.acquire.aligned;\n" ::: "memory");
}
// ---- st.async into the peer, completing on its mbarrier (transaction bytes), and remote arrivals ----
// 16 bytes at shared::cluster address `addr` of the peer; `bar`: the peer's mbarrier (shared::cluster address).
__device__ __forceinline__ void st_async16(uint32_t addr, uint4 v, uint32_t bar) {
    asm volatile(
        "st.async.shared::cluster.mbarrier::complete_tx::bytes.v4.b32 [%0], {%1, %2, %3, %4}, [%5];\n" ::"r"(addr),
        "r"(v.x), "r"(v.y), "r"(v.z), "r"(v.w), "r"(bar)
        : "memory");
}
__device__ __forceinline__ void st_async4(uint32_t addr, int32_t v, uint32_t bar) {
    asm volatile("st.async.shared::cluster.mbarrier::complete_tx::bytes.b32 [%0], %1, [%2];\n" ::"r"(addr), "r"(v),
                 "r"(bar)
                 : "memory");
}
// One arrival (release, cluster scope) on an mbarrier of the peer (shared::cluster address from map_rank).
__device__ __forceinline__ void mbar_arrive_cluster(uint32_t bar) {
    asm volatile("mbarrier.arrive.release.cluster.shared::cluster.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
// Waits (acquire, cluster scope: the arrivals may come from the peer) for the phase of parity `parity` of the
// local mbarrier `bar`, the retry loop in one asm block; traps after ~2^31 clocks (a lost arrival).
__device__ __forceinline__ void mbar_wait_cluster(uint32_t bar, uint32_t parity) {
    asm volatile(
        "{\n.reg .pred p;\n.reg .u64 t0, t1;\n"
        "mov.u64 t0, %%clock64;\n"
        "CL_WAIT:\n"
        "mbarrier.try_wait.parity.acquire.cluster.shared::cta.b64 p, [%0], %1;\n"
        "@p bra.uni CL_DONE;\n"
        "mov.u64 t1, %%clock64;\n"
        "sub.u64 t1, t1, t0;\n"
        "setp.gt.u64 p, t1, 2147483648;\n"
        "@p trap;\n"
        "bra.uni CL_WAIT;\n"
        "CL_DONE:\n}\n" ::"r"(bar),
        "r"(parity)
        : "memory");
}

// One thread's part of one gathered row in flight: the 8-byte e4m3 pieces of bf16 chunks c0 + 8 k (k < 8: chunk
// c0 of every 64-column block; scale (c0 + 8 k) / 16 = k / 2), k_pe chunk c0 (bf16 chunk 64 + c0), the row's 4
// scales and its slot (-1 masked). The 8 threads of a row then write whole 128-byte lines (coalesced 32-byte
// segments in the peer, 8 distinct bank groups here).
struct RowStage {
    uint2 raw[8];
    uint4 pe;
    float4 scale;
    int32_t slot;
};

// Issues the loads of row slot `s` (c0 = threadIdx.x % 8; a masked row reads row 0: no branch, dropped when stored).
__device__ __forceinline__ void load_stage(const MlaSparseKernelParams& p, int32_t s, RowStage& st) {
    const int c0 = threadIdx.x & 7;
    const uint8_t* src = p.store + static_cast<int64_t>(s < 0 ? 0 : s) * kFp8RowBytes;
    st.slot = s;
#pragma unroll
    for (int k = 0; k < 8; ++k) st.raw[k] = __ldg(reinterpret_cast<const uint2*>(src + (c0 + 8 * k) * 8));
    st.pe = __ldg(reinterpret_cast<const uint4*>(src + kFp8RopeOffset + c0 * 16));
    st.scale = __ldg(reinterpret_cast<const float4*>(src + kFp8ScaleOffset));
}

}  // namespace dsa::backend::cuda::mla_cluster
