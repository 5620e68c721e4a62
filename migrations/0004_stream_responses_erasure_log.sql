CREATE TABLE "erasure_log" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "erasure_log_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"erased_at" timestamp with time zone DEFAULT now() NOT NULL,
	"user_id_sha256" text NOT NULL,
	"participant_sessions_deleted" integer NOT NULL,
	"webhook_events_scrubbed" integer NOT NULL,
	"call_sessions_adjusted" integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE "stream_responses" (
	"call_session_id" text PRIMARY KEY NOT NULL,
	"response" jsonb NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "stream_responses" ADD CONSTRAINT "stream_responses_call_session_fk" FOREIGN KEY ("call_session_id") REFERENCES "public"."call_sessions"("call_session_id") ON DELETE cascade ON UPDATE no action;