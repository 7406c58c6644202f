#pragma once
// Follows message boundaries in a stream of regular (tagged) v3 messages without keeping their
// bodies. The bypass relay forwards bytes as they arrive but still needs to enforce the length
// limit, to know when a ReadyForQuery passes (and its transaction status), and whether a
// message is half received. No sockets, no allocation.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "proxy/protocol/codec.h"

namespace rowguard::protocol {

class FrameScanner {
 public:
  explicit FrameScanner(size_t max_len) : max_len_(max_len) {}

  // Feeds the next bytes of the stream. Calls on_frame(tag, first_body_byte) for every message
  // that ends inside `bytes` (first_body_byte is 0 for an empty body), in order. Returns how
  // many bytes it consumed: all of them, except
  //   - a trailing incomplete header (< 5 bytes): the caller keeps those bytes and feeds them
  //     again in front of the next ones (so it never forwards an unchecked length word);
  //   - on a length word < 4 or > max_len: it stops at that message's tag byte, and failed()
  //     turns true for good.
  template <class OnFrame>
  size_t feed(std::string_view bytes, OnFrame&& on_frame) {
    size_t i = 0;
    short_header_ = false;
    while (i < bytes.size() && !failed_) {
      if (remaining_ == 0) {  // at a header
        if (bytes.size() - i < 5) {
          short_header_ = true;
          break;
        }
        const FrameResult r = decode_frame(bytes.substr(i, 5), max_len_);
        if (r.status == DecodeStatus::kMalformed) {
          failed_ = true;
          too_long_ = r.too_long;
          failed_tag_ = bytes[i];
          length_ = r.length;
          error_ = r.error;
          break;
        }
        tag_ = bytes[i];
        remaining_ = r.length - 4;
        need_first_ = true;
        i += 5;
        frame_end_ = i;
        frame_length_ = r.length;
        if (remaining_ == 0) on_frame(tag_, '\0');
        continue;
      }
      if (need_first_) {
        first_ = bytes[i];
        need_first_ = false;
      }
      const size_t take = remaining_ < bytes.size() - i ? remaining_ : bytes.size() - i;
      i += take;
      remaining_ -= take;
      frame_end_ = i;
      if (remaining_ == 0) on_frame(tag_, first_);
    }
    return i;
  }

  // Part of a message received, not all of it (after the last feed).
  bool mid_message() const { return remaining_ > 0 || short_header_; }
  bool failed() const { return failed_; }
  bool too_long() const { return too_long_; }  // failed because the length is over max_len
  char failed_tag() const { return failed_tag_; }
  uint32_t failed_length() const { return length_; }
  const std::string& error() const { return error_; }
  // Inside on_frame: where the message ends in the bytes being fed, and its length word. Its
  // body is bytes[frame_end() - (frame_length() - 4), frame_end()) when frame_end() reaches
  // that far back (a message split across feeds started in earlier bytes).
  size_t frame_end() const { return frame_end_; }
  uint32_t frame_length() const { return frame_length_; }

 private:
  size_t max_len_;
  size_t remaining_ = 0;  // body bytes of the current message still to come
  char tag_ = 0;
  char first_ = 0;
  bool need_first_ = false;
  bool short_header_ = false;
  bool failed_ = false;
  bool too_long_ = false;
  char failed_tag_ = 0;
  uint32_t length_ = 0;
  std::string error_;
  size_t frame_end_ = 0;
  uint32_t frame_length_ = 0;
};

}  // namespace rowguard::protocol
