/** @file workspace.hpp
 *  @brief The scratch a network's `infer` needs, owned by the caller, and the
 *  network's own spare one behind its convenience `infer(x, levels, out)`.
 *
 *  `infer(ws, x, levels, out) const` writes only `ws` and `out`: threads that
 *  each pass their own workspace may infer through one network at once. The
 *  convenience overload without a workspace borrows the network's spare when no
 *  other thread holds it and makes a fresh one otherwise, so it is safe from
 *  any number of threads too, and allocation-free in the steady state of one. */
#pragma once
#include <memory>
#include <mutex>

namespace scoreood::nn {

/// One spare workspace of type W, lent to one caller at a time.
template <class W>
class WorkspaceCache {
 public:
  WorkspaceCache() = default;
  // A copy or a moved-to network starts with no spare: workspaces hold no parameters.
  WorkspaceCache(const WorkspaceCache&) {}
  WorkspaceCache& operator=(const WorkspaceCache&) { return *this; }

  /// Calls f(W&) with the spare workspace, or with a fresh one while another thread holds the spare.
  template <class F>
  void use(F&& f) const {
    std::unique_lock lock(mutex_, std::try_to_lock);
    if (!lock.owns_lock()) {
      W fresh;
      f(fresh);
      return;
    }
    if (!spare_) spare_ = std::make_unique<W>();
    f(*spare_);
  }

 private:
  mutable std::mutex mutex_;
  mutable std::unique_ptr<W> spare_;
};

}  // namespace scoreood::nn
