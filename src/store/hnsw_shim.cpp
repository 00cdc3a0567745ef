// hnsw_shim.cpp — sl_vindex over hnswlib (the one C++ file; see vindex.h).
//
// Labels in the graph are the caller's slots, so a slot put again after a
// delete replaces its vector in place (hnswlib's update path) and the graph
// never holds more elements than there are slots. The graph's storage grows
// by doubling up to the capacity, so an index with few entries stays small.
// Every entry point catches: no exception crosses into C.
#include "sluice/vindex.h"

#include <hnswlib/hnswlib.h>

#include <new>
#include <unordered_map>
#include <vector>

namespace {

constexpr size_t kM = 16;              // graph degree (32 on the base layer)
constexpr size_t kEfConstruction = 64; // insert breadth: build cost vs. graph quality
constexpr size_t kFirstElements = 256;
constexpr uint32_t kNone = 0xffffffffu;

struct Slot {
    uint64_t partition = 0;
    uint32_t internal = kNone; // the graph's element id, kNone: never put
    uint32_t pos = kNone;      // place in its partition's member list, kNone: free
};

} // namespace

struct sl_vindex {
    size_t dim = 0, capacity = 0, ef = 0, live = 0;
    hnswlib::InnerProductSpace space;
    hnswlib::HierarchicalNSW<float> graph;
    std::vector<Slot> slots;
    std::unordered_map<uint64_t, std::vector<uint32_t>> parts;

    sl_vindex(size_t d, size_t cap, size_t e)
        : dim(d), capacity(cap), ef(e), space(d),
          graph(&space, cap < kFirstElements ? cap : kFirstElements, kM, kEfConstruction),
          slots(cap)
    {
        graph.setEf(e);
    }

    const float *vector_of(uint32_t slot) const
    {
        return reinterpret_cast<const float *>(graph.getDataByInternalId(slots[slot].internal));
    }

    void unlink(uint32_t slot)
    {
        Slot &s = slots[slot];
        std::vector<uint32_t> &m = parts[s.partition];
        uint32_t last = m.back();
        m[s.pos] = last;
        slots[last].pos = s.pos;
        m.pop_back();
        if (m.empty())
            parts.erase(s.partition);
        s.pos = kNone;
        live--;
    }

    void link(uint32_t slot, uint64_t partition)
    {
        std::vector<uint32_t> &m = parts[partition];
        slots[slot].partition = partition;
        slots[slot].pos = static_cast<uint32_t>(m.size());
        m.push_back(slot);
        live++;
    }

    int scan(const std::vector<uint32_t> &m, const float *q, uint32_t *slot, float *sim) const
    {
        float best = -2;
        uint32_t at = kNone;
        for (uint32_t s : m) {
            float d = 1.0f - graph.fstdistfunc_(q, vector_of(s), graph.dist_func_param_);
            if (d > best)
                best = d, at = s;
        }
        *slot = at;
        *sim = best;
        return at == kNone ? 0 : 1;
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
    ix->graph.setEf(ix->ef);
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

size_t sl_vindex_memory(const sl_vindex *ix)
{
    const hnswlib::HierarchicalNSW<float> &g = ix->graph;
    size_t upper = 0;
    for (size_t i = 0; i < g.cur_element_count; i++)
        upper += g.element_levels_[i] > 0 ? g.size_links_per_element_ * g.element_levels_[i] : 0;
    return g.max_elements_ * (g.size_data_per_element_ + sizeof(void *) + sizeof(int) +
                              sizeof(std::mutex) + sizeof(unsigned short)) +
           upper + g.link_list_update_locks_.size() * sizeof(std::mutex) +
           g.label_lookup_.size() * 32 + ix->slots.size() * sizeof(Slot) + ix->live * 24;
}

int sl_vindex_put(sl_vindex *ix, uint32_t slot, uint64_t partition, const float *v)
{
    if (slot >= ix->capacity)
        return -1;
    try {
        hnswlib::HierarchicalNSW<float> &g = ix->graph;
        Slot &s = ix->slots[slot];
        if (s.pos != kNone)
            ix->unlink(slot);
        if (s.internal == kNone && g.cur_element_count == g.max_elements_) {
            size_t grown = g.max_elements_ * 2;
            g.resizeIndex(grown < ix->capacity ? grown : ix->capacity);
        }
        s.internal = g.addPoint(v, slot, -1); // an existing label: replaced and undeleted
        ix->link(slot, partition);
        return 0;
    } catch (...) {
        return -1;
    }
}

void sl_vindex_del(sl_vindex *ix, uint32_t slot)
{
    if (slot >= ix->capacity || ix->slots[slot].pos == kNone)
        return;
    ix->unlink(slot);
    try {
        ix->graph.markDelete(slot);
    } catch (...) {
    }
}

int sl_vindex_nearest_exact(const sl_vindex *ix, uint64_t partition, const float *q,
                            uint32_t *slot, float *similarity)
{
    auto it = ix->parts.find(partition);
    if (it == ix->parts.end())
        return 0;
    return ix->scan(it->second, q, slot, similarity);
}

int sl_vindex_nearest(const sl_vindex *ix, uint64_t partition, const float *q, uint32_t *slot,
                      float *similarity)
{
    auto it = ix->parts.find(partition);
    if (it == ix->parts.end())
        return 0;
    if (it->second.size() <= SL_VINDEX_SCAN_MAX)
        return ix->scan(it->second, q, slot, similarity);
    try {
        size_t k = ix->live < ix->ef ? ix->live : ix->ef; // neighbours examined
        auto found = ix->graph.searchKnn(q, k); // farthest first
        float best = -2;
        uint32_t at = kNone;
        while (!found.empty()) {
            auto [dist, label] = found.top();
            found.pop();
            const Slot &s = ix->slots[label];
            if (s.pos != kNone && s.partition == partition)
                best = 1.0f - dist, at = static_cast<uint32_t>(label);
        }
        *slot = at;
        *similarity = best;
        return at == kNone ? 0 : 1;
    } catch (...) {
        return -1;
    }
}

} // extern "C"
