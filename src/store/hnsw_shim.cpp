// hnsw_shim.cpp — sl_vindex: one index per partition, exact scan for small
// ones, an hnswlib graph for big ones (the one C++ file; see vindex.h).
//
// Every vector is kept once as float16 in a slot-indexed store (3 KB at
// 1,536 dims, half the float32 size; its rounding moves a cosine by ~1e-5):
// a small partition is scanned exactly over it, and it re-ranks what a graph
// answers. A partition that grows past SL_VINDEX_GRAPH_AT gets its own
// graph over int8 copies (a scale per vector, 1.5 KB): graph walks touch
// many vectors, and a quarter of the bytes is most of their cost. The graph
// is filled a few members per put (the backlog): until it holds them all,
// the backlog is scanned exactly beside it, so a put never holds the loop
// for a whole build. Labels in a graph are reused after a delete (hnswlib
// 0.6.2 replaces a deleted label's vector in place), so a graph never holds
// more elements than its partition's peak. Every entry point catches: no
// exception crosses into C.
#include "sluice/vindex.h"

#include <hnswlib/hnswlib.h>

#include <immintrin.h>
#include <sys/mman.h>

#include <cmath>
#include <algorithm>
#include <cstring>
#include <functional>
#include <limits>
#include <queue>
#include <memory>
#include <new>
#include <thread>
#include <atomic>
#include <unordered_map>
#include <vector>

#ifndef SL_VINDEX_M
#define SL_VINDEX_M 24 // graph degree (twice that on the base layer)
#endif
#ifndef SL_VINDEX_EFC
#define SL_VINDEX_EFC 128 // insert breadth: build cost vs. graph quality
#endif

namespace {

constexpr uint32_t kNone = 0xffffffffu;
constexpr size_t kChunk = 64;       // slots per block of the float16 store
constexpr size_t kFirstElements = SL_VINDEX_GRAPH_AT * 2;
constexpr size_t kDrain = 2;        // backlog members moved into the graph per put
constexpr size_t kRerankMax = 64;   // graph answers re-ranked in float16

size_t pad32(size_t d)
{
    return (d + 31) & ~size_t(31);
}

// ---- kernels (n: a multiple of 32) ------------------------------------------------

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
float dot_half(const float *q, const uint16_t *h, size_t n)
{
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    for (size_t i = 0; i < n; i += 16) {
        __m256 h0 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(h + i)));
        __m256 h1 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(h + i + 8)));
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), h0, a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8), h1, a1);
    }
    __m256 s = _mm256_add_ps(a0, a1);
    __m128 t = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    t = _mm_hadd_ps(t, t);
    t = _mm_hadd_ps(t, t);
    return _mm_cvtss_f32(t);
}

void to_half(const float *v, uint16_t *h, size_t n)
{
    for (size_t i = 0; i < n; i += 8)
        _mm_storeu_si128(reinterpret_cast<__m128i *>(h + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(v + i), _MM_FROUND_TO_NEAREST_INT));
}

void from_half(const uint16_t *h, float *v, size_t n)
{
    for (size_t i = 0; i < n; i += 8)
        _mm256_storeu_ps(v + i,
                         _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(h + i))));
}

#if defined(__AVX512VNNI__) && defined(__AVX512BW__) && defined(__AVX512VL__)
// |a| * sign(b, a) as with maddubs below, but vpdpbusd multiplies, sums four
// pairs and accumulates in one instruction, 64 bytes at a time (no
// saturation: int32 sums). Values are -127..127, so |a| fits a u8.
int32_t dot_i8(const int8_t *a, const int8_t *b, size_t n)
{
    __m512i acc = _mm512_setzero_si512();
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        __m512i x = _mm512_loadu_si512(a + i), y = _mm512_loadu_si512(b + i);
        __mmask64 neg = _mm512_movepi8_mask(x);
        y = _mm512_mask_sub_epi8(y, neg, _mm512_setzero_si512(), y);
        acc = _mm512_dpbusd_epi32(acc, _mm512_abs_epi8(x), y);
    }
    alignas(64) int32_t lanes[16]; // (GCC 12 warns inside _mm512_reduce_add_epi32)
    _mm512_store_si512(lanes, acc);
    int32_t s = 0;
    for (int32_t l : lanes)
        s += l;
    if (i < n) { // n is a multiple of 32: one half-width step left
        __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(a + i));
        __m256i y = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(b + i));
        __m256i t = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_sign_epi8(x, x),
                                        _mm256_sign_epi8(y, x));
        __m128i h = _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
        h = _mm_hadd_epi32(h, h);
        h = _mm_hadd_epi32(h, h);
        s += _mm_cvtsi128_si32(h);
    }
    return s;
}
#else
int32_t dot_i8(const int8_t *a, const int8_t *b, size_t n)
{
    // |a| * sign(b, a): one unsigned operand for maddubs; values stay in
    // -127..127, so a pair's sum (<= 2 * 127 * 127) never saturates.
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i acc = _mm256_setzero_si256();
    for (size_t i = 0; i < n; i += 32) {
        __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(a + i));
        __m256i y = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(b + i));
        __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, ones));
    }
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
    s = _mm_hadd_epi32(s, s);
    s = _mm_hadd_epi32(s, s);
    return _mm_cvtsi128_si32(s);
}
#endif
#else
uint16_t half_of(float f)
{
    uint32_t x;
    std::memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u, e = (x >> 23) & 0xffu, m = x & 0x7fffffu;
    if (e == 0xff)
        return static_cast<uint16_t>(sign | 0x7c00u | (m ? 0x200u : 0));
    int ee = static_cast<int>(e) - 127 + 15;
    if (ee >= 31)
        return static_cast<uint16_t>(sign | 0x7c00u);
    if (ee <= 0) { // subnormal or zero
        if (ee < -10)
            return static_cast<uint16_t>(sign);
        m |= 0x800000u;
        uint32_t shift = static_cast<uint32_t>(14 - ee);
        uint32_t r = m >> shift, rest = m & ((1u << shift) - 1), halfway = 1u << (shift - 1);
        if (rest > halfway || (rest == halfway && (r & 1)))
            r++;
        return static_cast<uint16_t>(sign | r);
    }
    uint32_t r = (static_cast<uint32_t>(ee) << 10) | (m >> 13), rest = m & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (r & 1)))
        r++; // may carry into the exponent: still the right rounding
    return static_cast<uint16_t>(sign | r);
}

float float_of(uint16_t h)
{
    uint32_t sign = (h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, x;
    if (e == 0) {
        if (!m) {
            x = sign;
        } else {
            e = 127 - 15 + 1;
            while (!(m & 0x400u))
                m <<= 1, e--;
            x = sign | (e << 23) | ((m & 0x3ffu) << 13);
        }
    } else if (e == 31) {
        x = sign | 0x7f800000u | (m << 13);
    } else {
        x = sign | ((e - 15 + 127) << 23) | (m << 13);
    }
    float f;
    std::memcpy(&f, &x, 4);
    return f;
}

float dot_half(const float *q, const uint16_t *h, size_t n)
{
    float s = 0;
    for (size_t i = 0; i < n; i++)
        s += q[i] * float_of(h[i]);
    return s;
}

void to_half(const float *v, uint16_t *h, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h[i] = half_of(v[i]);
}

void from_half(const uint16_t *h, float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        v[i] = float_of(h[i]);
}

int32_t dot_i8(const int8_t *a, const int8_t *b, size_t n)
{
    int32_t s = 0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}
#endif

// An int8 vector as the graph stores it: [float scale][n int8].
void quantise(const float *v, size_t n, char *out)
{
    float top = 0;
    for (size_t i = 0; i < n; i++)
        top = std::fmax(top, std::fabs(v[i]));
    float scale = top > 0 ? top / 127.0f : 1.0f, inv = 1.0f / scale;
    std::memcpy(out, &scale, 4);
    int8_t *q = reinterpret_cast<int8_t *>(out + 4);
    for (size_t i = 0; i < n; i++)
        q[i] = static_cast<int8_t>(std::lrintf(v[i] * inv));
}

float i8_distance(const void *a, const void *b, const void *param)
{
    size_t n = *static_cast<const size_t *>(param);
    float sa, sb;
    std::memcpy(&sa, a, 4);
    std::memcpy(&sb, b, 4);
    const int8_t *x = static_cast<const int8_t *>(a) + 4, *y = static_cast<const int8_t *>(b) + 4;
    return 1.0f - sa * sb * static_cast<float>(dot_i8(x, y, n));
}

class I8Space : public hnswlib::SpaceInterface<float> {
  public:
    explicit I8Space(size_t n) : n_(n) {}
    size_t get_data_size() override { return 4 + n_; }
    hnswlib::DISTFUNC<float> get_dist_func() override { return i8_distance; }
    void *get_dist_func_param() override { return &n_; }

  private:
    size_t n_;
};

void prefetch(const char *p, size_t bytes)
{
#if defined(__SSE__)
    for (size_t o = 0; o < bytes; o += 64)
        _mm_prefetch(p + o, _MM_HINT_T1); // to L2: measured faster than to L1 here
#else
    (void)p, (void)bytes;
#endif
}

using Found = std::pair<float, hnswlib::tableint>;

// hnswlib's own search (searchKnn: a greedy descent, then searchBaseLayerST's
// best-first walk of the base layer keeping the ef closest), over its graph,
// with one change: the vectors of a node's unvisited neighbours are
// prefetched whole, a few ahead, before they are compared. The library
// prefetches one cache line of the next one; a vector is 25 lines, and
// waiting for memory is most of a walk's time.
class Walk {
  public:
    explicit Walk(const hnswlib::HierarchicalNSW<float> &g)
        : g_(g), bytes_(g.data_size_), vl_(g.visited_list_pool_->getFreeVisitedList())
    {
    }
    ~Walk() { g_.visited_list_pool_->releaseVisitedList(vl_); }
    Walk(const Walk &) = delete;
    Walk &operator=(const Walk &) = delete;

    std::vector<Found> run(const void *q, size_t ef)
    {
        hnswlib::tableint at = g_.enterpoint_node_;
        float d = dist(q, at);
        for (int level = g_.maxlevel_; level > 0; level--) {
            for (bool moved = true; moved;) {
                moved = false;
                unsigned *ll = g_.get_linklist(at, level);
                const hnswlib::tableint *nb = reinterpret_cast<hnswlib::tableint *>(ll + 1);
                for (int i = 0, n = g_.getListCount(ll); i < n; i++) {
                    float e = dist(q, nb[i]);
                    if (e < d)
                        d = e, at = nb[i], moved = true;
                }
            }
        }
        return base(q, at, d, ef);
    }

  private:
    const hnswlib::HierarchicalNSW<float> &g_;
    size_t bytes_;
    hnswlib::VisitedList *vl_;

    const char *data(hnswlib::tableint i) const { return g_.getDataByInternalId(i); }
    float dist(const void *q, hnswlib::tableint i) const
    {
        return g_.fstdistfunc_(q, data(i), g_.dist_func_param_);
    }

    std::vector<Found> base(const void *q, hnswlib::tableint ep, float d, size_t ef)
    {
        constexpr size_t kAhead = 2; // vectors ahead: more only fills the queue (measured)
        std::priority_queue<Found> top; // the ef closest, farthest on top
        std::priority_queue<Found, std::vector<Found>, std::greater<Found>> next;
        std::vector<hnswlib::tableint> fresh(g_.maxM0_);
        hnswlib::vl_type *seen = vl_->mass, tag = vl_->curV;
        bool deletions = g_.num_deleted_ > 0;
        float bound = std::numeric_limits<float>::max();
        if (!deletions || !g_.isMarkedDeleted(ep))
            top.emplace(d, ep), bound = d;
        next.emplace(d, ep);
        seen[ep] = tag;
        while (!next.empty()) {
            Found c = next.top();
            if (c.first > bound && top.size() >= ef)
                break;
            next.pop();
            unsigned *ll = g_.get_linklist0(c.second);
            const hnswlib::tableint *nb = reinterpret_cast<hnswlib::tableint *>(ll + 1);
            size_t m = 0;
            for (size_t i = 0, n = g_.getListCount(ll); i < n; i++) {
                if (seen[nb[i]] != tag)
                    seen[nb[i]] = tag, fresh[m++] = nb[i];
            }
            for (size_t i = 0; i < m && i < kAhead; i++)
                prefetch(data(fresh[i]), bytes_);
            for (size_t i = 0; i < m; i++) {
                if (i + kAhead < m)
                    prefetch(data(fresh[i + kAhead]), bytes_);
                float e = dist(q, fresh[i]);
                if (top.size() < ef || e < bound) {
                    next.emplace(e, fresh[i]);
                    if (!deletions || !g_.isMarkedDeleted(fresh[i]))
                        top.emplace(e, fresh[i]);
                    if (top.size() > ef)
                        top.pop();
                    if (!top.empty())
                        bound = top.top().first;
                }
            }
        }
        std::vector<Found> out;
        out.reserve(top.size());
        for (; !top.empty(); top.pop())
            out.push_back(top.top());
        return out; // farthest first
    }
};

// A walk reads vectors all over the graph's level-0 block (150 MB at 100k):
// with 4 KB pages nearly every read is also a TLB miss and a page walk.
// Transparent huge pages for the block (the kernel's "madvise" mode, the
// default here) take most of that away; the block is untouched when this
// runs (just allocated or reallocated), so its pages fault in huge.
void advise_huge(const hnswlib::HierarchicalNSW<float> &h)
{
#ifdef MADV_HUGEPAGE
    constexpr uintptr_t k2M = uintptr_t(1) << 21;
    uintptr_t from = reinterpret_cast<uintptr_t>(h.data_level0_memory_);
    uintptr_t to = (from + h.max_elements_ * h.size_data_per_element_) & ~(k2M - 1);
    from = (from + k2M - 1) & ~(k2M - 1);
    if (to > from)
        (void)madvise(reinterpret_cast<void *>(from), to - from, MADV_HUGEPAGE); // a hint
#else
    (void)h;
#endif
}

struct Graph {
    I8Space space;
    hnswlib::HierarchicalNSW<float> hnsw;
    std::vector<uint32_t> slot_of;     // label -> slot, kNone: free
    std::vector<uint32_t> free_labels; // deleted labels, reused first
    size_t live = 0;
    explicit Graph(size_t n) : space(n), hnsw(&space, kFirstElements, SL_VINDEX_M, SL_VINDEX_EFC)
    {
        advise_huge(hnsw);
    }
    void resize(size_t n)
    {
        hnsw.resizeIndex(n);
        advise_huge(hnsw);
    }
};

struct Part {
    std::vector<uint32_t> members;
    std::vector<uint32_t> backlog; // members not in the graph yet (only with a graph)
    std::unique_ptr<Graph> graph;
};

struct Slot {
    uint64_t partition = 0;
    uint32_t pos = kNone;   // place in its partition's members, kNone: free
    uint32_t label = kNone; // in its partition's graph
    uint32_t bpos = kNone;  // place in its partition's backlog
};

} // namespace

struct sl_vindex {
    size_t dim, np, capacity, ef, live = 0;
    std::vector<Slot> slots;
    std::vector<std::unique_ptr<uint16_t[]>> chunks; // the float16 store
    std::unordered_map<uint64_t, Part> parts;
    mutable std::vector<float> qf;  // the query, padded
    mutable std::vector<char> qi;   // ... as int8
    std::vector<float> tmp;         // a stored vector back as float

    sl_vindex(size_t d, size_t cap, size_t e)
        : dim(d), np(pad32(d)), capacity(cap), ef(e), slots(cap),
          chunks((cap + kChunk - 1) / kChunk), qf(np), qi(4 + np), tmp(np)
    {
    }

    uint16_t *half_of_slot(uint32_t s) const
    {
        return chunks[s / kChunk].get() + (s % kChunk) * np;
    }

    void store(uint32_t s, const float *v)
    {
        std::unique_ptr<uint16_t[]> &c = chunks[s / kChunk];
        if (!c)
            c.reset(new uint16_t[kChunk * np]());
        std::memcpy(tmp.data(), v, dim * sizeof(float));
        std::memset(tmp.data() + dim, 0, (np - dim) * sizeof(float));
        to_half(tmp.data(), half_of_slot(s), np);
    }

    float sim(const float *q, uint32_t s) const
    {
        return dot_half(q, half_of_slot(s), np);
    }

    void scan(const std::vector<uint32_t> &m, const float *q, uint32_t *at, float *best) const
    {
        for (uint32_t s : m) {
            float d = sim(q, s);
            if (d > *best)
                *best = d, *at = s;
        }
    }

    static void swap_pop(std::vector<uint32_t> &v, uint32_t at, std::vector<Slot> &slots,
                         uint32_t Slot::*pos)
    {
        uint32_t last = v.back();
        v[at] = last;
        slots[last].*pos = at;
        v.pop_back();
    }

    void graph_add(Part &p, uint32_t s)
    {
        Graph &g = *p.graph;
        uint32_t label;
        if (!g.free_labels.empty()) {
            label = g.free_labels.back();
        } else {
            label = static_cast<uint32_t>(g.slot_of.size());
            if (g.hnsw.cur_element_count == g.hnsw.max_elements_) // doubling, up to the capacity
                g.resize(std::min(g.hnsw.max_elements_ * 2, std::max(capacity, label + 1ul)));
            g.slot_of.reserve(g.slot_of.size() + 1);
            g.free_labels.reserve(g.slot_of.size() + 1); // unlink's push never allocates
        }
        from_half(half_of_slot(s), tmp.data(), np);
        quantise(tmp.data(), np, qi.data());
        g.hnsw.addPoint(qi.data(), label, -1); // a deleted label: replaced and undeleted
        if (label == g.slot_of.size())
            g.slot_of.push_back(s);
        else
            g.free_labels.pop_back(), g.slot_of[label] = s;
        slots[s].label = label;
        g.live++;
    }

    void drain(Part &p, size_t n)
    {
        while (n-- && !p.backlog.empty()) {
            uint32_t s = p.backlog.back();
            graph_add(p, s); // throws before changing anything but the graph
            p.backlog.pop_back();
            slots[s].bpos = kNone;
        }
    }

    void backlog_push(Part &p, uint32_t s)
    {
        slots[s].bpos = static_cast<uint32_t>(p.backlog.size());
        p.backlog.push_back(s);
    }

    void drop_graph(Part &p)
    {
        for (uint32_t s : p.members)
            slots[s].label = kNone, slots[s].bpos = kNone;
        p.backlog.clear();
        p.graph.reset();
    }

    void unlink(uint32_t s)
    {
        Slot &e = slots[s];
        auto it = parts.find(e.partition);
        Part &p = it->second;
        if (e.label != kNone) {
            Graph &g = *p.graph;
            try {
                g.hnsw.markDelete(e.label);
            } catch (...) {
            }
            g.slot_of[e.label] = kNone;
            g.free_labels.push_back(e.label); // reserved by the put that took it
            g.live--;
            e.label = kNone;
        }
        if (e.bpos != kNone)
            swap_pop(p.backlog, e.bpos, slots, &Slot::bpos), e.bpos = kNone;
        swap_pop(p.members, e.pos, slots, &Slot::pos);
        e.pos = kNone;
        live--;
        if (p.members.empty())
            parts.erase(it);
        else if (p.graph && p.members.size() < SL_VINDEX_GRAPH_AT / 2)
            drop_graph(p); // small again: scanned, and the graph's memory back
    }

    void link(uint32_t s, uint64_t partition, size_t drain_n)
    {
        Part &p = parts[partition];
        p.members.reserve(p.members.size() + 1);
        if (p.graph)
            p.backlog.reserve(p.backlog.size() + 1);
        slots[s].partition = partition;
        slots[s].pos = static_cast<uint32_t>(p.members.size());
        p.members.push_back(s);
        live++;
        if (p.graph) {
            backlog_push(p, s);
        } else if (p.members.size() > SL_VINDEX_GRAPH_AT) {
            p.graph.reset(new Graph(np));
            p.graph->hnsw.setEf(ef);
            p.backlog.reserve(p.members.size());
            for (uint32_t m : p.members)
                backlog_push(p, m);
        }
        drain(p, drain_n);
    }

    // The whole backlog of p into its graph, `threads` inserts at a time
    // (hnswlib's addPoint is safe across threads for distinct new labels;
    // the graph is sized first, since resizing is not).
    void build(Part &p, unsigned threads)
    {
        Graph &g = *p.graph;
        if (!g.free_labels.empty() || threads < 2) {
            drain(p, p.backlog.size());
            return;
        }
        size_t n = p.backlog.size(), first = g.slot_of.size(), row = 4 + np;
        if (first + n > g.hnsw.max_elements_)
            g.resize(first + n);
        std::vector<char> q(n * row);
        g.slot_of.reserve(first + n);
        g.free_labels.reserve(first + n);
        for (size_t i = 0; i < n; i++) {
            uint32_t s = p.backlog[i];
            from_half(half_of_slot(s), tmp.data(), np);
            quantise(tmp.data(), np, &q[i * row]);
        }
        std::vector<char> done(n, 0);
        std::vector<uint32_t> rest; // allocated before the graph changes
        rest.reserve(n);
        std::atomic<size_t> next{0};
        std::atomic<bool> failed{false};
        auto work = [&] {
            for (size_t i; (i = next++) < n && !failed;) {
                try {
                    g.hnsw.addPoint(&q[i * row], first + i, -1);
                    done[i] = 1;
                } catch (...) {
                    failed = true;
                }
            }
        };
        std::vector<std::thread> pool;
        pool.reserve(threads);
        for (unsigned t = 1; t < threads; t++) {
            try {
                pool.emplace_back(work);
            } catch (...) { // no thread: fewer of them
                break;
            }
        }
        work();
        for (std::thread &t : pool)
            t.join();
        // What failed to go in stays in the backlog (still scanned), its
        // label free for the next try: nothing throws from here on.
        for (size_t i = 0; i < n; i++) {
            uint32_t s = p.backlog[i];
            slots[s].bpos = kNone;
            if (done[i]) {
                g.slot_of.push_back(s);
                slots[s].label = static_cast<uint32_t>(first + i), g.live++;
            } else {
                g.slot_of.push_back(kNone);
                g.free_labels.push_back(static_cast<uint32_t>(first + i)), rest.push_back(s);
            }
        }
        p.backlog.clear();
        for (uint32_t s : rest)
            backlog_push(p, s);
        if (failed)
            throw std::bad_alloc();
    }

    int search(const Part &p, const float *q, uint32_t *at, float *best) const
    {
        const Graph &g = *p.graph;
        if (g.live) {
            quantise(q, np, qi.data());
            size_t k = ef < kRerankMax ? ef : kRerankMax;
            std::vector<Found> found = Walk(g.hnsw).run(qi.data(), ef);
            size_t from = found.size() > k ? found.size() - k : 0; // the k closest
            for (size_t i = from; i < found.size(); i++) {
                uint32_t s = g.slot_of[g.hnsw.getExternalLabel(found[i].second)];
                float d = s == kNone ? -2 : sim(q, s);
                if (d > *best)
                    *best = d, *at = s;
            }
        }
        scan(p.backlog, q, at, best);
        return *at == kNone ? 0 : 1;
    }

    const float *padded(const float *q) const
    {
        std::memcpy(qf.data(), q, dim * sizeof(float));
        return qf.data();
    }
};

extern "C" {

sl_vindex *sl_vindex_new(size_t dim, size_t capacity, size_t ef)
{
    if (!dim || !capacity || capacity >= kNone)
        return nullptr;
    try {
        return new sl_vindex(dim, capacity, ef < 8 ? 8 : ef);
    } catch (...) {
        return nullptr;
    }
}

void sl_vindex_free(sl_vindex *ix)
{
    delete ix;
}

void sl_vindex_set_ef(sl_vindex *ix, size_t ef)
{
    ix->ef = ef < 8 ? 8 : ef;
    for (auto &kv : ix->parts) {
        if (kv.second.graph)
            kv.second.graph->hnsw.setEf(ix->ef);
    }
}

size_t sl_vindex_ef(const sl_vindex *ix)
{
    return ix->ef;
}

size_t sl_vindex_dim(const sl_vindex *ix)
{
    return ix->dim;
}

size_t sl_vindex_count(const sl_vindex *ix)
{
    return ix->live;
}

static size_t graph_memory(const Graph &gr)
{
    const hnswlib::HierarchicalNSW<float> &g = gr.hnsw;
    size_t upper = 0;
    for (size_t i = 0; i < g.cur_element_count; i++)
        upper += g.element_levels_[i] > 0 ? g.size_links_per_element_ * g.element_levels_[i] : 0;
    return g.max_elements_ * (g.size_data_per_element_ + sizeof(void *) + sizeof(int) +
                              sizeof(std::mutex) + sizeof(unsigned short)) +
           upper + g.link_list_update_locks_.size() * sizeof(std::mutex) +
           g.label_lookup_.size() * 32 + gr.slot_of.capacity() * 4 + gr.free_labels.capacity() * 4;
}

size_t sl_vindex_memory(const sl_vindex *ix)
{
    size_t n = ix->slots.size() * sizeof(Slot) + ix->chunks.size() * sizeof(void *);
    for (const auto &c : ix->chunks)
        n += c ? kChunk * ix->np * sizeof(uint16_t) : 0;
    for (const auto &kv : ix->parts) {
        const Part &p = kv.second;
        n += 64 + (p.members.capacity() + p.backlog.capacity()) * 4;
        if (p.graph)
            n += graph_memory(*p.graph);
    }
    return n;
}

size_t sl_vindex_step(sl_vindex *ix, size_t n)
{
    size_t left = 0;
    try {
        for (auto &kv : ix->parts) {
            Part &p = kv.second;
            if (p.graph && n) {
                size_t before = p.backlog.size();
                ix->drain(p, n);
                n -= before - p.backlog.size();
            }
            left += p.backlog.size();
        }
    } catch (...) {
    }
    return left;
}

size_t sl_vindex_graphs(const sl_vindex *ix)
{
    size_t n = 0;
    for (const auto &kv : ix->parts)
        n += kv.second.graph != nullptr;
    return n;
}

// put and load differ only in how much graph work the insert drains now.
static int put_drained(sl_vindex *ix, uint32_t slot, uint64_t partition, const float *v,
                       size_t drain)
{
    if (slot >= ix->capacity)
        return -1;
    try {
        if (ix->slots[slot].pos != kNone)
            ix->unlink(slot);
        ix->store(slot, v);
        ix->link(slot, partition, drain); // linked before anything can throw; the graph may lag
        return 0;
    } catch (...) {
        return ix->slots[slot].pos != kNone ? 0 : -1;
    }
}

int sl_vindex_put(sl_vindex *ix, uint32_t slot, uint64_t partition, const float *v)
{
    return put_drained(ix, slot, partition, v, kDrain);
}

int sl_vindex_load(sl_vindex *ix, uint32_t slot, uint64_t partition, const float *v)
{
    return put_drained(ix, slot, partition, v, 0);
}

int sl_vindex_build(sl_vindex *ix, unsigned threads)
{
    try {
        for (auto &kv : ix->parts) {
            if (kv.second.graph)
                ix->build(kv.second, threads);
        }
    } catch (...) {
        return -1;
    }
    return 0;
}

int32_t sl_vindex_dot_i8(const int8_t *a, const int8_t *b, size_t n)
{
    return dot_i8(a, b, n);
}

float sl_vindex_cosine_i8(const float *a, const float *b, size_t dim)
{
    size_t np = pad32(dim);
    std::vector<float> x(np), y(np);
    std::vector<char> qa(4 + np), qb(4 + np);
    std::memcpy(x.data(), a, dim * sizeof(float));
    std::memcpy(y.data(), b, dim * sizeof(float));
    quantise(x.data(), np, qa.data());
    quantise(y.data(), np, qb.data());
    return 1.0f - i8_distance(qa.data(), qb.data(), &np);
}

void sl_vindex_del(sl_vindex *ix, uint32_t slot)
{
    if (slot >= ix->capacity || ix->slots[slot].pos == kNone)
        return;
    ix->unlink(slot);
}

int sl_vindex_nearest_exact(const sl_vindex *ix, uint64_t partition, const float *q,
                            uint32_t *slot, float *similarity)
{
    auto it = ix->parts.find(partition);
    if (it == ix->parts.end())
        return 0;
    uint32_t at = kNone;
    float best = -2;
    ix->scan(it->second.members, ix->padded(q), &at, &best);
    *slot = at, *similarity = best;
    return at == kNone ? 0 : 1;
}

int sl_vindex_nearest(const sl_vindex *ix, uint64_t partition, const float *q, uint32_t *slot,
                      float *similarity)
{
    auto it = ix->parts.find(partition);
    if (it == ix->parts.end())
        return 0;
    const Part &p = it->second;
    uint32_t at = kNone;
    float best = -2;
    const float *qp = ix->padded(q);
    try {
        if (p.graph) {
            ix->search(p, qp, &at, &best);
        } else {
            ix->scan(p.members, qp, &at, &best);
        }
    } catch (...) {
        return -1;
    }
    *slot = at, *similarity = best;
    return at == kNone ? 0 : 1;
}

} // extern "C"
