CREATE TABLE "service_health" (
	"name" text PRIMARY KEY NOT NULL,
	"state" text DEFAULT 'unknown' NOT NULL,
	"checked_at" timestamp with time zone,
	"last_error" text,
	"last_success_at" timestamp with time zone,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "service_health_state_check" CHECK ("service_health"."state" in ('ok', 'unauthorized', 'unreachable', 'unknown'))
);
--> statement-breakpoint
ALTER TABLE "reconcile_state" ADD COLUMN "sweep_from" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "reconcile_state" ADD COLUMN "sweep_position" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "reconcile_state" ADD COLUMN "covered_from" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "reconcile_state" ADD COLUMN "sweep_started_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "reconcile_state" ADD COLUMN "sweep_seen" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "reconcile_state" ADD COLUMN "sweep_enqueued" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "reconcile_state" ADD COLUMN "sweep_unusable" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "reconcile_state" ADD COLUMN "unusable_total" bigint DEFAULT 0 NOT NULL;