-- Two pages of one session in flight (queue/checkpoint-page.ts, WRITE_PAGE_IN_FLIGHT_SQL). A page
-- statement sent while the page before it is still being written writes its rows first and
-- stores its cursor last, in place of the cursor its page was fetched with. When it cannot (the
-- lease is gone, or the stored cursor is another: the page before it rolled back, or had not yet
-- taken its lock), it calls this function: the error rolls the page's rows back with it.
CREATE FUNCTION "participant_sessions_page_not_written"(call_session_id text, lease_held boolean) RETURNS integer
LANGUAGE plpgsql
AS $$
BEGIN
  IF lease_held THEN
    RAISE EXCEPTION 'page of call session % was not written: the page before it had not stored its cursor', call_session_id
      USING ERRCODE = 'SA001';
  END IF;
  RAISE EXCEPTION 'page of call session % was not written: this worker no longer holds its lease', call_session_id
    USING ERRCODE = 'SA002';
END
$$;
