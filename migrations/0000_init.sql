CREATE TABLE "call_sessions" (
	"call_session_id" text PRIMARY KEY NOT NULL,
	"call_type" text NOT NULL,
	"call_id" text NOT NULL,
	"call_cid" text NOT NULL,
	"status" text DEFAULT 'pending' NOT NULL,
	"total_participant_sessions" integer,
	"total_participant_duration" bigint,
	"archived_participant_sessions" integer DEFAULT 0 NOT NULL,
	"session_ended_at" timestamp with time zone,
	"stats_report_ready_at" timestamp with time zone,
	"retention_expires_at" timestamp with time zone,
	"attempts" integer DEFAULT 0 NOT NULL,
	"next_attempt_at" timestamp with time zone DEFAULT now() NOT NULL,
	"lease_owner" text,
	"lease_expires_at" timestamp with time zone,
	"cursor" text,
	"last_error" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"archived_at" timestamp with time zone,
	CONSTRAINT "call_sessions_status_check" CHECK ("call_sessions"."status" in ('pending', 'running', 'complete', 'retrying', 'dead', 'expired')),
	CONSTRAINT "call_sessions_cid_check" CHECK ("call_sessions"."call_cid" = "call_sessions"."call_type" || ':' || "call_sessions"."call_id")
);
--> statement-breakpoint
CREATE TABLE "participant_sessions" (
	"call_session_id" text NOT NULL,
	"user_session_id" text NOT NULL,
	"call_type" text NOT NULL,
	"call_id" text NOT NULL,
	"user_id" text NOT NULL,
	"joined_at" timestamp with time zone,
	"left_at" timestamp with time zone,
	"duration_in_seconds" integer,
	"publisher_type" text NOT NULL,
	"roles" text[] DEFAULT '{}'::text[] NOT NULL,
	"raw" jsonb NOT NULL,
	"archived_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "participant_sessions_pkey" PRIMARY KEY("call_session_id","user_session_id")
);
--> statement-breakpoint
CREATE TABLE "webhook_events" (
	"webhook_id" text PRIMARY KEY NOT NULL,
	"type" text NOT NULL,
	"call_cid" text,
	"session_id" text,
	"attempt" integer,
	"received_at" timestamp with time zone DEFAULT now() NOT NULL,
	"payload" jsonb NOT NULL
);
--> statement-breakpoint
ALTER TABLE "participant_sessions" ADD CONSTRAINT "participant_sessions_call_session_fk" FOREIGN KEY ("call_session_id") REFERENCES "public"."call_sessions"("call_session_id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "call_sessions_claim_idx" ON "call_sessions" USING btree ("status","next_attempt_at","retention_expires_at");--> statement-breakpoint
CREATE INDEX "call_sessions_lease_idx" ON "call_sessions" USING btree ("lease_expires_at") WHERE "call_sessions"."status" = 'running';--> statement-breakpoint
CREATE INDEX "call_sessions_call_idx" ON "call_sessions" USING btree ("call_type","call_id");--> statement-breakpoint
CREATE INDEX "call_sessions_ended_idx" ON "call_sessions" USING btree ("session_ended_at");--> statement-breakpoint
CREATE INDEX "participant_sessions_user_idx" ON "participant_sessions" USING btree ("user_id");--> statement-breakpoint
CREATE INDEX "participant_sessions_call_idx" ON "participant_sessions" USING btree ("call_type","call_id");--> statement-breakpoint
CREATE INDEX "participant_sessions_joined_idx" ON "participant_sessions" USING btree ("joined_at");--> statement-breakpoint
CREATE INDEX "webhook_events_session_idx" ON "webhook_events" USING btree ("session_id");--> statement-breakpoint
CREATE INDEX "webhook_events_received_idx" ON "webhook_events" USING btree ("received_at");