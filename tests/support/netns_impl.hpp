#pragma once
#include <future>
#include <thread>

namespace sgtest {
template <typename T>
T Netns::run(const std::function<T()>& fn) const {
  std::packaged_task<T()> task([&] {
    enter();
    return fn();
  });
  auto fut = task.get_future();
  std::thread t(std::move(task));
  t.join();
  return fut.get();
}
}  // namespace sgtest
