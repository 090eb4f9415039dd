// The HTTP session (server/http/http_session.cc) over real loopback sockets, with clients
// that go away at every stage of an exchange: before the header, right after sending the
// request (FIN and RST), between the stream head and the first chunk, mid-stream (also
// while a large write is in flight), after the last chunk, and a client that never reads
// (cut at the write timeout). Every case asserts:
//   - the session object is destroyed: ServerState::connections.open() and
//     active_generations return to 0;
//   - AsyncResponse::cancel() runs exactly once when the client left before the end of the
//     response, never after a complete response, never overlapping another call and never
//     followed by a poll();
//   - and, by running at all, no crash: the suite also runs under ASan + UBSan (and TSan,
//     scripts/tsan.sh), where a use-after-free or a data race of the session shows up.
// The races between the client's disconnect and the session's own writes are
// nondeterministic; the cases that provoke them repeat kRepeats times.
#include <gtest/gtest.h>

#include <string>
#include <thread>

#include "session_harness.h"

namespace hotswap::server::testing {
namespace {

constexpr int kRepeats = 25;
// "cancel() is never called after a complete response" (the brief of issue 11). A session
// that calls cancel() on every finished AsyncResponse as a harmless release (GenerationJob's
// cancel() of finished streams is a no-op) fails the cases that end normally; set false to
// accept that and check only that such a response is not counted as cancelled by the client.
constexpr bool kNoCancelAfterCompleteResponse = true;
// How long a session may take to go away once its client has. The server's own timeouts
// (test_config) are far longer, so a session that only ends at a timeout fails the case.
constexpr Millis kWait(10000);

const std::string kStreamRequest =
    "POST /stream HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
const std::string kSyncRequest = "GET /sync HTTP/1.1\r\nHost: t\r\n\r\n";

ServerConfig test_config() {
  ServerConfig c;
  c.timeouts.idle_ms = 60000;
  c.timeouts.header_ms = 60000;
  c.timeouts.body_ms = 60000;
  c.timeouts.write_ms = 60000;
  c.io_threads = 2;
  return c;
}

enum class Hangup { kClose, kReset };
const char* name(Hangup h) { return h == Hangup::kClose ? "close" : "reset"; }

void hang_up(RawClient& client, Hangup how) {
  if (how == Hangup::kClose) client.close();
  else client.reset();
}

std::string describe(TestServer& server) {
  return "open_connections=" + std::to_string(open_connections(server.state())) +
         " active_generations=" + std::to_string(server.state().active_generations.load()) +
         " accepted=" + std::to_string(server.accepted());
}

// What every case checks once the client is gone: the session was destroyed. Fatal (a stuck
// session would make every later round of the case wait too).
#define ASSERT_SESSION_GONE(server, accepts) \
  ASSERT_TRUE((server).wait_idle((accepts), kWait)) << "session not destroyed: " << describe(server)

void expect_contract(const FakeAsyncResponse& fake) {
  EXPECT_EQ(fake.starts.load(), 1);
  EXPECT_EQ(fake.overlapping_calls.load(), 0) << "start/poll/cancel ran concurrently (not on the session strand)";
  EXPECT_EQ(fake.polls_after_cancel.load(), 0) << "poll() after cancel()";
  EXPECT_EQ(fake.polls_after_end.load(), 0) << "poll() after the response ended";
  EXPECT_LE(fake.cancels.load(), 1) << "cancel() more than once";
}

// The client left before the end: exactly one cancel().
void expect_cancelled_once(const FakeAsyncResponse& fake) {
  expect_contract(fake);
  EXPECT_EQ(fake.cancels.load(), 1);
}

// The client had the whole response: no cancel().
void expect_not_cancelled(const FakeAsyncResponse& fake) {
  expect_contract(fake);
  if (kNoCancelAfterCompleteResponse) {
    EXPECT_EQ(fake.cancels.load(), 0) << "cancel() after a complete response";
  } else {
    EXPECT_EQ(fake.cancels.load(), fake.cancels_after_end.load()) << "cancel() before the end of a complete response";
  }
}

class HttpSessionTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (server_) {
      if (!HasFailure()) {
        EXPECT_TRUE(server_->wait_idle(0, kWait)) << describe(*server_);
      }
      server_.reset();
    }
  }
  TestServer& server(ServerConfig config = test_config(), TestServer::Options options = {}) {
    if (!server_) server_ = std::make_unique<TestServer>(std::move(config), options);
    return *server_;
  }
  std::unique_ptr<TestServer> server_;
};

// ---- normal exchanges (the harness itself works) ----

TEST_F(HttpSessionTest, SyncRequestsOnOneKeepAliveConnectionIncludingPipelined) {
  TestServer& s = server();
  {
    RawClient c(s.port());
    ASSERT_TRUE(c.connected());
    ASSERT_TRUE(c.send(kSyncRequest));
    ASSERT_TRUE(c.read_until("hello", kWait));
    ASSERT_TRUE(c.send(kSyncRequest + kSyncRequest + "GET /nope HTTP/1.1\r\nHost: t\r\n\r\n"));
    ASSERT_TRUE(c.read_until("HTTP/1.1 404", kWait));
    EXPECT_EQ(c.occurrences("HTTP/1.1 200 OK\r\n"), 3);
    EXPECT_EQ(c.occurrences("hello"), 3);
    EXPECT_EQ(open_connections(s.state()), 1);
  }
  ASSERT_SESSION_GONE(s, 1);
  EXPECT_EQ(s.sync_calls(), 3);
}

TEST_F(HttpSessionTest, StreamedResponseIsChunkedAndTheConnectionIsReused) {
  TestServer& s = server();
  RawClient c(s.port());
  ASSERT_TRUE(c.send(kStreamRequest));
  auto fake = s.wait_fake(0);
  ASSERT_NE(fake, nullptr);
  fake->push(FakeItem::head());
  ASSERT_TRUE(c.read_until("\r\n\r\n", kWait));
  EXPECT_NE(c.received().find("Transfer-Encoding: chunked"), std::string::npos) << c.received();
  fake->push(FakeItem::data("data: a\n\n"));
  ASSERT_TRUE(c.read_until("data: a", kWait));
  fake->push_all({FakeItem::data("data: b\n\n"), FakeItem::end()});
  ASSERT_TRUE(c.read_until("0\r\n\r\n", kWait));
  EXPECT_NE(c.received().find("9\r\ndata: b\n\n\r\n"), std::string::npos) << c.received();
  EXPECT_TRUE(wait_for([&] { return s.state().active_generations.load() == 0; }, kWait));
  ASSERT_TRUE(c.send(kSyncRequest));
  ASSERT_TRUE(c.read_until("hello", kWait));
  c.close();
  ASSERT_SESSION_GONE(s, 1);
  expect_not_cancelled(*fake);
  EXPECT_EQ(s.cancelled_by_client(), 0);
}

TEST_F(HttpSessionTest, WholeResponseFromTheAsyncResponse) {
  TestServer& s = server();
  s.set_make_fake([] {
    auto f = std::make_shared<FakeAsyncResponse>();
    f->push(FakeItem::full("all at once"));
    return f;
  });
  RawClient c(s.port());
  ASSERT_TRUE(c.send(kStreamRequest));
  ASSERT_TRUE(c.read_until("all at once", kWait));
  EXPECT_NE(c.received().find("Content-Length: 11"), std::string::npos);
  c.close();
  ASSERT_SESSION_GONE(s, 1);
  expect_not_cancelled(*s.wait_fake(0));
}

// ---- before the request is complete: no handler runs ----

TEST_F(HttpSessionTest, DisconnectBeforeTheHeaderIsComplete) {
  TestServer& s = server();
  const std::string partial[] = {"", "P", "POST /stream HTTP/1.1\r\nHo", "POST /stream HTTP/1.1\r\nHost: t\r\n"};
  int accepts = 0;
  for (const std::string& bytes : partial) {
    for (Hangup how : {Hangup::kClose, Hangup::kReset}) {
      SCOPED_TRACE(std::string(name(how)) + " after " + std::to_string(bytes.size()) + " bytes");
      RawClient c(s.port());
      ASSERT_TRUE(c.send(bytes));
      hang_up(c, how);
      ASSERT_SESSION_GONE(s, ++accepts);
    }
  }
  EXPECT_TRUE(s.fakes().empty());
}

TEST_F(HttpSessionTest, DisconnectDuringTheBody) {
  TestServer& s = server();
  int accepts = 0;
  for (Hangup how : {Hangup::kClose, Hangup::kReset}) {
    SCOPED_TRACE(name(how));
    RawClient c(s.port());
    ASSERT_TRUE(c.send("POST /stream HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n{\"a\":"));
    hang_up(c, how);
    ASSERT_SESSION_GONE(s, ++accepts);
  }
  EXPECT_TRUE(s.fakes().empty());
}

// ---- right after sending a whole request ----

// What the fake has ready when the session first polls it.
enum class Ready { kNothing, kHead, kHeadAndChunk, kWholeStream, kFullResponse };
const char* name(Ready r) {
  switch (r) {
    case Ready::kNothing: return "nothing";
    case Ready::kHead: return "head";
    case Ready::kHeadAndChunk: return "head+chunk";
    case Ready::kWholeStream: return "head+chunk+end";
    case Ready::kFullResponse: return "full";
  }
  return "?";
}

std::shared_ptr<FakeAsyncResponse> fake_with(Ready ready) {
  auto f = std::make_shared<FakeAsyncResponse>();
  switch (ready) {
    case Ready::kNothing: break;
    case Ready::kHead: f->push(FakeItem::head()); break;
    case Ready::kHeadAndChunk: f->push_all({FakeItem::head(), FakeItem::data("data: 1\n\n")}); break;
    case Ready::kWholeStream: f->push_all({FakeItem::head(), FakeItem::data("data: 1\n\n"), FakeItem::end()}); break;
    case Ready::kFullResponse: f->push(FakeItem::full("{}")); break;
  }
  return f;
}

// The crash of issue 11: the disconnect probe's EOF arrives while the stream head is being
// written. Whatever the session had ready, the fake is cancelled once if the response had
// not ended, and at most once otherwise (the write of a finished response may still fail).
TEST_F(HttpSessionTest, DisconnectRightAfterSendingTheRequest) {
  TestServer& s = server();
  int accepts = 0;
  std::size_t fakes = 0;
  for (Ready ready : {Ready::kNothing, Ready::kHead, Ready::kHeadAndChunk, Ready::kWholeStream, Ready::kFullResponse}) {
    for (Hangup how : {Hangup::kClose, Hangup::kReset}) {
      for (int i = 0; i < kRepeats; ++i) {
        SCOPED_TRACE(std::string(name(how)) + " with " + name(ready) + " ready, round " + std::to_string(i));
        s.set_make_fake([ready] { return fake_with(ready); });
        RawClient c(s.port());
        ASSERT_TRUE(c.send(kStreamRequest));
        hang_up(c, how);
        ASSERT_SESSION_GONE(s, ++accepts);
        // A reset can discard the request before the session reads it: then no handler ran.
        const auto all = s.fakes();
        if (all.size() == fakes) {
          EXPECT_EQ(how, Hangup::kReset) << "a closed (FIN) request was not handled";
          continue;
        }
        ASSERT_EQ(all.size(), fakes + 1);
        const FakeAsyncResponse& fake = *all[fakes++];
        if (fake.ended()) {
          expect_contract(fake);
        } else {
          expect_cancelled_once(fake);
        }
      }
    }
  }
  EXPECT_GT(fakes, 0u);
}

TEST_F(HttpSessionTest, DisconnectRightAfterSendingASyncRequest) {
  TestServer& s = server();
  int accepts = 0;
  for (const std::string& request : {kSyncRequest, std::string("GET /big HTTP/1.1\r\nHost: t\r\n\r\n")}) {
    for (Hangup how : {Hangup::kClose, Hangup::kReset}) {
      for (int i = 0; i < kRepeats; ++i) {
        SCOPED_TRACE(std::string(name(how)) + " " + request.substr(0, 9));
        RawClient c(s.port());
        ASSERT_TRUE(c.send(request));
        hang_up(c, how);
        ASSERT_SESSION_GONE(s, ++accepts);
      }
    }
  }
}

// ---- between the stream head and the first chunk ----

TEST_F(HttpSessionTest, DisconnectBetweenHeadAndFirstChunk) {
  TestServer& s = server();
  int accepts = 0;
  std::size_t n = 0;
  for (Hangup how : {Hangup::kClose, Hangup::kReset}) {
    for (int i = 0; i < kRepeats; ++i) {
      SCOPED_TRACE(std::string(name(how)) + " round " + std::to_string(i));
      RawClient c(s.port());
      ASSERT_TRUE(c.send(kStreamRequest));
      auto fake = s.wait_fake(n++);
      ASSERT_NE(fake, nullptr);
      fake->push(FakeItem::head());
      ASSERT_TRUE(c.read_until("\r\n\r\n", kWait));
      hang_up(c, how);
      // Odd rounds: the first chunk becomes ready while the session learns of the disconnect.
      if (i % 2 == 1) fake->push(FakeItem::data("data: late\n\n"));
      ASSERT_SESSION_GONE(s, ++accepts);
      expect_cancelled_once(*fake);
      fake->push(FakeItem::data("data: after\n\n"));  // a wake after the session is gone is harmless
    }
  }
  EXPECT_EQ(s.cancelled_by_client(), static_cast<int64_t>(n));
}

// ---- mid-stream ----

TEST_F(HttpSessionTest, DisconnectMidStream) {
  TestServer& s = server();
  int accepts = 0;
  std::size_t n = 0;
  for (Hangup how : {Hangup::kClose, Hangup::kReset}) {
    for (int i = 0; i < kRepeats; ++i) {
      SCOPED_TRACE(std::string(name(how)) + " round " + std::to_string(i));
      RawClient c(s.port());
      ASSERT_TRUE(c.send(kStreamRequest));
      auto fake = s.wait_fake(n++);
      ASSERT_NE(fake, nullptr);
      fake->push_all({FakeItem::head(), FakeItem::data("data: 1\n\n")});
      ASSERT_TRUE(c.read_until("data: 1", kWait));
      fake->push(FakeItem::data("data: 2\n\n"));
      ASSERT_TRUE(c.read_until("data: 2", kWait));
      // Odd rounds: more tokens (and a wake) race with the hang-up.
      if (i % 2 == 1) fake->push(FakeItem::data("data: 3\n\n"));
      hang_up(c, how);
      if (i % 2 == 0) fake->push(FakeItem::data("data: 3\n\n"));
      ASSERT_SESSION_GONE(s, ++accepts);
      expect_cancelled_once(*fake);
    }
  }
  EXPECT_EQ(s.cancelled_by_client(), static_cast<int64_t>(n));
}

// A chunk far larger than the socket buffers is being written when the client hangs up.
TEST_F(HttpSessionTest, DisconnectWhileALargeChunkIsBeingWritten) {
  TestServer::Options options;
  options.server_sndbuf = 16 << 10;
  TestServer& s = server(test_config(), options);
  int accepts = 0;
  std::size_t n = 0;
  for (Hangup how : {Hangup::kClose, Hangup::kReset}) {
    for (int i = 0; i < 5; ++i) {
      SCOPED_TRACE(std::string(name(how)) + " round " + std::to_string(i));
      RawClient c(s.port(), 16 << 10);
      ASSERT_TRUE(c.send(kStreamRequest));
      auto fake = s.wait_fake(n++);
      ASSERT_NE(fake, nullptr);
      fake->push_all({FakeItem::head(), FakeItem::data(std::string(8 << 20, 'x'))});
      ASSERT_TRUE(c.read_at_least(64 << 10, kWait));
      hang_up(c, how);
      ASSERT_SESSION_GONE(s, ++accepts);
      expect_cancelled_once(*fake);
    }
  }
}

// ---- after the last chunk: the response is complete, nothing to cancel ----

TEST_F(HttpSessionTest, DisconnectAfterTheLastChunk) {
  TestServer& s = server();
  int accepts = 0;
  std::size_t n = 0;
  for (Hangup how : {Hangup::kClose, Hangup::kReset}) {
    for (int i = 0; i < kRepeats; ++i) {
      SCOPED_TRACE(std::string(name(how)) + " round " + std::to_string(i));
      RawClient c(s.port());
      ASSERT_TRUE(c.send(kStreamRequest));
      auto fake = s.wait_fake(n++);
      ASSERT_NE(fake, nullptr);
      fake->push_all({FakeItem::head(), FakeItem::data("data: 1\n\n")});
      ASSERT_TRUE(c.read_until("data: 1", kWait));
      fake->push_all({FakeItem::data("data: [DONE]\n\n"), FakeItem::end()});
      ASSERT_TRUE(c.read_until("0\r\n\r\n", kWait));
      hang_up(c, how);
      ASSERT_SESSION_GONE(s, ++accepts);
      expect_not_cancelled(*fake);
    }
  }
  EXPECT_EQ(s.cancelled_by_client(), 0);
}

// The stream's end becomes ready while the client hangs up after the first chunk: either
// the end was polled first (no cancel) or the disconnect was seen first (one cancel).
TEST_F(HttpSessionTest, DisconnectRacingTheEndOfTheStream) {
  TestServer& s = server();
  int accepts = 0;
  std::size_t n = 0;
  for (Hangup how : {Hangup::kClose, Hangup::kReset}) {
    for (int i = 0; i < kRepeats; ++i) {
      SCOPED_TRACE(std::string(name(how)) + " round " + std::to_string(i));
      RawClient c(s.port());
      ASSERT_TRUE(c.send(kStreamRequest));
      auto fake = s.wait_fake(n++);
      ASSERT_NE(fake, nullptr);
      fake->push_all({FakeItem::head(), FakeItem::data("data: 1\n\n")});
      ASSERT_TRUE(c.read_until("data: 1", kWait));
      std::thread engine([&] { fake->push_all({FakeItem::data("data: [DONE]\n\n"), FakeItem::end()}); });
      hang_up(c, how);
      engine.join();
      ASSERT_SESSION_GONE(s, ++accepts);
      expect_contract(*fake);
      if (!fake->ended()) {
        EXPECT_EQ(fake->cancels.load(), 1);
      }
    }
  }
}

// ---- a client that never reads ----

// Small socket buffers on both sides and a short write timeout: the session must drop the
// connection at the write timeout and cancel the response once.
TEST_F(HttpSessionTest, ClientThatNeverReadsIsCutAtTheWriteTimeout) {
  ServerConfig config = test_config();
  config.timeouts.write_ms = 300;
  TestServer::Options options;
  options.server_sndbuf = 8 << 10;
  TestServer& s = server(config, options);
  RawClient c(s.port(), 8 << 10);
  ASSERT_TRUE(c.send(kStreamRequest));
  auto fake = s.wait_fake(0);
  ASSERT_NE(fake, nullptr);
  const auto started = SteadyClock::now();
  fake->push_all({FakeItem::head(), FakeItem::data(std::string(4 << 20, 'x'))});
  // More tokens keep coming while the write is stuck: they wait in the fake, unpolled.
  for (int i = 0; i < 10; ++i) fake->push(FakeItem::data(std::string(1 << 10, 'y')));
  ASSERT_SESSION_GONE(s, 1);
  const auto took = std::chrono::duration_cast<Millis>(SteadyClock::now() - started);
  EXPECT_GE(took.count(), 250) << "dropped before the write timeout";
  expect_cancelled_once(*fake);
  EXPECT_EQ(s.cancelled_by_client(), 1);
  // The client's side sees the connection end (EOF or reset) once it reads.
  EXPECT_TRUE(c.read_to_close(kWait));
}

// A sync response the client never reads is dropped at the write timeout too.
TEST_F(HttpSessionTest, ClientThatNeverReadsASyncResponse) {
  ServerConfig config = test_config();
  config.timeouts.write_ms = 300;
  TestServer::Options options;
  options.server_sndbuf = 8 << 10;
  TestServer& s = server(config, options);
  RawClient c(s.port(), 8 << 10);
  ASSERT_TRUE(c.send("GET /big HTTP/1.1\r\nHost: t\r\n\r\n"));
  ASSERT_SESSION_GONE(s, 1);
}

// ---- many clients at once, each leaving at a different stage ----

TEST_F(HttpSessionTest, ConcurrentClientsLeavingAtEveryStage) {
  TestServer& s = server();
  constexpr int kClients = 8;
  constexpr int kRounds = 10;
  std::atomic<int> failures{0};
  for (int round = 0; round < kRounds; ++round) {
    s.clear_fakes();
    s.set_make_fake([] { return fake_with(Ready::kHead); });
    std::vector<std::thread> clients;
    for (int k = 0; k < kClients; ++k) {
      clients.emplace_back([&, k] {
        RawClient c(s.port());
        if (!c.send(kStreamRequest)) return;
        const Hangup how = k % 2 == 0 ? Hangup::kClose : Hangup::kReset;
        if (k % 4 >= 2 && !c.read_until("\r\n\r\n", kWait)) ++failures;
        hang_up(c, how);
      });
    }
    for (auto& t : clients) t.join();
    ASSERT_SESSION_GONE(s, (round + 1) * kClients);
    for (const auto& fake : s.fakes()) expect_cancelled_once(*fake);
  }
  EXPECT_EQ(failures.load(), 0);
}

}  // namespace
}  // namespace hotswap::server::testing
