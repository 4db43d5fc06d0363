#include "feed_service.hpp"

namespace smtpgate {

FeedService::FeedService(const DaemonConfig& cfg) : cfg_(cfg) {}
void FeedService::start_up() {}
int FeedService::ms_until_next_check() const { return -1; }
void FeedService::check_now_if_due() {}
void FeedService::reconfigure(const DaemonConfig& cfg) { cfg_ = cfg; }

}  // namespace smtpgate
